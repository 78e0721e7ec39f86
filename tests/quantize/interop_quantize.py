"""Peers' libraries read what mimo-quantize writes.

usage: interop_quantize.py MKFIXTURE QUANTIZE QUANTIZE_DECODE

Everything happens in one scratch directory (tempfile.mkdtemp), removed at the end.

Converts the tiny bf16 and fp8 fixtures (mimo layout) and the bf16 fixture in the
compressed-tensors layout, each with --max-shard-size 4M, then:
  - the reference `safetensors` library (0.8) loads every output shard and every dflash/ file
    with deserialize and safe_open (framework "np"), and safetensors.serialize of the loaded
    tensors with metadata {"format": "pt"} gives our file byte for byte; the index weight_map lists
    exactly the shards' tensors, each in its shard, and metadata.total_size is their byte sum;
  - ml_dtypes (0.6) decodes a sample of the MXFP4 weights (every 11th of the 528, all their
    blocks): codes as float4_e2m1fn with the low nibble first (element 2j in the low nibble of
    byte j, reference/mxfp4_formats.md 2.6), times the float8_e8m0fnu scale of each block of 32;
    the values equal libquant's lq_mxfp4_dequantize (QUANTIZE_DECODE) bit for bit;
  - those ml_dtypes values against the source weights (ml_dtypes bfloat16, or float8_e4m3fn
    times the F32 scale of its 128x128 block) give an SQNR within 0.3 dB of the 19.05 dB of
    reference/mxfp4_formats.md 1.8 (mse mode on Gaussian data).
Exit status 0 when every check passes, 1 otherwise.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "output"))
from interop_safetensors import BITS, CHECKS, FAILURES, check, enable_np_float8, spec_of  # noqa: E402
from safetensors import deserialize, safe_open, serialize  # noqa: E402

NP = {"BF16": ml_dtypes.bfloat16, "F32": np.float32, "F8_E4M3": ml_dtypes.float8_e4m3fn, "U8": np.uint8}
GAUSSIAN_MSE_SQNR_DB = 19.05  # reference/mxfp4_formats.md 1.8


def load_dir(d):
    """Every tensor of a sharded directory through the reference library: name -> (dtype, shape, bytes)."""
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    files = sorted(set(idx["weight_map"].values()))
    tensors, total = {}, 0
    for fn in files:
        path = os.path.join(d, fn)
        raw = open(path, "rb").read()
        keep, specs = [], {}
        for name, info in deserialize(raw):
            check(idx["weight_map"].get(name) == fn, f"{d}/{fn}: {name} not indexed to this shard")
            data = bytes(info["data"])
            n = 1
            for s in info["shape"]:
                n *= s
            check(len(data) == n * BITS[info["dtype"]] // 8, f"{fn}: {name}: size")
            total += len(data)
            specs[name] = spec_of(info["dtype"], list(info["shape"]), data, keep)
            tensors[name] = (info["dtype"], list(info["shape"]), data)
        check(bytes(serialize(specs, metadata={"format": "pt"})) == raw,
              f"{d}/{fn}: differs from safetensors.serialize of its own tensors")
        with safe_open(path, framework="np") as f:
            check(f.metadata() == {"format": "pt"}, f"{fn}: metadata {f.metadata()}")
            for name in f.keys():
                check(f.get_tensor(name).tobytes() == tensors[name][2], f"{fn}: {name}: safe_open values differ")
    check(set(idx["weight_map"]) == set(tensors), f"{d}: index and shards list different tensors")
    check(idx["metadata"]["total_size"] == total, f"{d}: total_size {idx['metadata']['total_size']} != {total}")
    return tensors


def as_np(t):
    dtype, shape, data = t
    return np.frombuffer(data, dtype=NP[dtype]).reshape(shape)


def mx_decode(packed, scales):
    """MXFP4 with ml_dtypes: low nibble = even element; value = E2M1 code times the E8M0 scale."""
    n, kh = packed.shape
    codes = np.empty((n, 2 * kh), dtype=np.uint8)
    codes[:, 0::2] = packed & 0x0F
    codes[:, 1::2] = packed >> 4
    vals = codes.view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    sc = scales.view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    return vals * np.repeat(sc, 32, axis=1)


def source_weight(src, name):
    dtype = src[name][0]
    w = as_np(src[name]).astype(np.float32)
    if dtype == "F8_E4M3":
        s = as_np(src[name + "_scale_inv"]).astype(np.float32)
        rows, cols = w.shape
        w = w * s[np.arange(rows) // 128][:, np.arange(cols) // 128]  # one f32 product each
    return w


def convert_and_check(q, dec, work, variant, layout):
    src_dir = os.path.join(work, variant)
    out = os.path.join(work, f"out-{variant}-{layout}")
    extra = ["--layout", layout] if layout != "mimo" else []
    subprocess.run([q, src_dir, out, "--max-shard-size", "4M", "-q"] + extra, check=True)
    got = load_dir(out)
    load_dir(os.path.join(out, "dflash"))
    src = load_dir(src_dir)
    suffix = "_packed" if layout == "compressed-tensors" else ""
    experts = sorted(n for n in src if ".mlp.experts." in n and n.endswith("_proj.weight"))
    check(len(experts) == 528, f"{variant}: {len(experts)} expert weights in the source")
    sample = experts[::11]
    dest = os.path.join(work, f"decoded-{variant}-{layout}.f32")
    subprocess.run([dec, out, dest] + sample, check=True)
    lib = np.fromfile(dest, dtype=np.float32)
    pos, sw2, se2, blocks = 0, 0.0, 0.0, 0
    for name in sample:
        p, s = got.get(name + suffix), got.get(name + "_scale")
        check(p is not None and s is not None and p[0] == "U8" and s[0] == "U8", f"{name}: packed weight and scale")
        if p is None or s is None:
            continue
        packed, scales = as_np(p), as_np(s)
        ours = mx_decode(packed, scales)
        n = ours.size
        ref = lib[pos:pos + n].reshape(ours.shape)
        pos += n
        blocks += n // 32
        check(np.array_equal(ours.view(np.uint32), ref.view(np.uint32)),
              f"{variant}/{layout}: {name}: ml_dtypes and libquant decode differ")
        w = source_weight(src, name).astype(np.float64)
        sw2 += float((w ** 2).sum())
        se2 += float(((w - ours) ** 2).sum())
    check(pos == lib.size, f"{variant}/{layout}: decoded {lib.size} values, compared {pos}")
    db = 10 * math.log10(sw2 / se2)
    check(abs(db - GAUSSIAN_MSE_SQNR_DB) <= 0.3, f"{variant}/{layout}: sample SQNR {db:.3f} dB")
    print(f"{variant}/{layout}: {len(got)} tensors loaded and re-serialized identically; {len(sample)} MXFP4 "
          f"weights ({blocks} blocks) decoded by ml_dtypes = libquant; SQNR vs source {db:.3f} dB")


def main():
    mk, q, dec = sys.argv[1:4]
    work = tempfile.mkdtemp(prefix="mimo-quantize-interop-")
    enable_np_float8()
    for v in ("bf16", "fp8"):
        subprocess.run([mk, "--preset", "tiny", "--variant", v, "--out", os.path.join(work, v), "-q"],
                       check=True, stdout=subprocess.DEVNULL)
    try:
        convert_and_check(q, dec, work, "bf16", "mimo")
        convert_and_check(q, dec, work, "fp8", "mimo")
        convert_and_check(q, dec, work, "bf16", "compressed-tensors")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"interop_quantize: {CHECKS[0]} checks, {len(FAILURES)} failed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
