"""The Python `safetensors` library (the reference implementation) checks the fixtures
mimo-mkfixture writes, i.e. real products of our writer rather than test files:

usage: interop_fixture.py MKFIXTURE WORKDIR

For the tiny BF16 and FP8 fixtures and their dflash/ drafters:
  - every shard named by the index loads with safetensors.deserialize and safe_open
    (framework "np", float8 types through ml_dtypes), metadata {"format": "pt"};
  - re-serializing the loaded tensors with safetensors.serialize gives our file byte for byte;
  - the index weight_map lists exactly the tensors of the shards, each in its shard, and
    metadata.total_size is the sum of tensor bytes;
  - the FP8 fixture's F8_E4M3 weights, decoded by ml_dtypes and multiplied by their F32 scale
    grid (per checkpoint-TP shard for the fused qkv, reference/mimo_arch.md 4.4), match the BF16
    fixture's weights with SQNR > 28 dB (E4M3 keeps 3 mantissa bits: about 31 dB on Gaussian
    data; a wrong interleave or grid gives about 0 dB).
"""
import json
import math
import os
import shutil
import subprocess
import sys

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "output"))
from interop_safetensors import BITS, check, enable_np_float8, spec_of, CHECKS, FAILURES  # noqa: E402
from safetensors import deserialize, safe_open, serialize  # noqa: E402

NP = {"BF16": ml_dtypes.bfloat16, "F32": np.float32, "F8_E4M3": ml_dtypes.float8_e4m3fn}


def load_checkpoint(d):
    idx_path = os.path.join(d, "model.safetensors.index.json")
    idx = json.load(open(idx_path))
    files = sorted(set(idx["weight_map"].values()))
    tensors, total = {}, 0
    for fn in files:
        path = os.path.join(d, fn)
        raw = open(path, "rb").read()
        got = list(deserialize(raw))
        keep, specs = [], {}
        for name, info in got:
            check(idx["weight_map"].get(name) == fn, f"{fn}: {name} not indexed to this shard")
            data = bytes(info["data"])
            n = 1
            for s in info["shape"]:
                n *= s
            check(len(data) == n * BITS[info["dtype"]] // 8, f"{fn}: {name}: size")
            total += len(data)
            specs[name] = spec_of(info["dtype"], list(info["shape"]), data, keep)
            tensors[name] = (info["dtype"], list(info["shape"]), data)
        ref = bytes(serialize(specs, metadata={"format": "pt"}))
        check(ref == raw, f"{d}/{fn}: differs from safetensors.serialize of its own tensors")
        with safe_open(path, framework="np") as f:
            check(f.metadata() == {"format": "pt"}, f"{fn}: metadata {f.metadata()}")
            for name in f.keys():
                t = f.get_tensor(name)
                check(t.tobytes() == tensors[name][2], f"{fn}: {name}: safe_open values differ")
    check(set(idx["weight_map"]) == set(tensors), f"{d}: index and shards list different tensors")
    check(idx["metadata"]["total_size"] == total, f"{d}: total_size {idx['metadata']['total_size']} != {total}")
    return tensors


def as_f32(t):
    dtype, shape, data = t
    return np.frombuffer(data, dtype=NP[dtype]).astype(np.float32).reshape(shape)


def dequant(w, s, shards):
    rows, cols = w.shape
    rs = rows // shards
    bps = (rs + 127) // 128
    r = np.arange(rows)
    srow = (r // rs) * bps + (r % rs) // 128
    return w * s[srow][:, np.arange(cols) // 128]


def sqnr(ref, x):
    e = float(((ref.astype(np.float64) - x) ** 2).sum())
    return math.inf if e == 0 else 10 * math.log10(float((ref.astype(np.float64) ** 2).sum()) / e)


def main():
    mk, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    enable_np_float8()
    for v in ("bf16", "fp8"):
        subprocess.run([mk, "--preset", "tiny", "--variant", v, "--out", os.path.join(work, v), "-q"],
                       check=True, stdout=subprocess.DEVNULL)
    b = load_checkpoint(os.path.join(work, "bf16"))
    f = load_checkpoint(os.path.join(work, "fp8"))
    load_checkpoint(os.path.join(work, "bf16", "dflash"))
    load_checkpoint(os.path.join(work, "fp8", "dflash"))
    S = json.load(open(os.path.join(work, "fp8", "config.json")))["num_key_value_heads"]
    worst, n = math.inf, 0
    for name, t in f.items():
        if t[0] != "F8_E4M3":
            continue
        s = as_f32(f[name + "_scale_inv"])
        if "qkv_proj" in name:
            pre = name[: name.index("qkv_proj")]
            q, k, v = (as_f32(b[pre + p + "_proj.weight"]) for p in "qkv")
            ref = np.concatenate([part[i * (part.shape[0] // S):(i + 1) * (part.shape[0] // S)]
                                  for i in range(S) for part in (q, k, v)])
            x = dequant(as_f32(t), s, S)
        else:
            ref = as_f32(b[name])
            x = dequant(as_f32(t), s, 1)
        db = sqnr(ref, x)
        worst = min(worst, db)
        n += 1
        check(db > 28.0, f"{name}: FP8 (ml_dtypes decode) vs BF16 SQNR {db:.2f} dB")
    check(n == 12 + 3 + 11 * 16 * 3, f"compared {n} FP8 tensors")
    shutil.rmtree(work, ignore_errors=True)
    print(f"interop_fixture: {CHECKS[0]} checks, {len(FAILURES)} failed; "
          f"{n} FP8 tensors vs BF16, worst SQNR {worst:.2f} dB")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
