"""Golden outputs of the quantized tiny MiMo checkpoints from Hugging Face transformers'
MiMoV2FlashForCausalLM in float32: (a) the tiny FP8 fixture and (b) the MXFP4 artifact that
mimo-quantize makes from it.

usage: golden_quant.py MKFIXTURE QUANTIZE OUT_FP8 OUT_MXFP4 [--seed N] [--bf16-golden DIR]

The weights are decoded here, from the format definitions, not through our C readers:
  F8_E4M3    OCP E4M3FN (sign, 4 exponent bits with bias 7, 3 mantissa bits; e = 0 subnormal;
             S.1111.111 NaN, rejected), times the F32 `weight_scale_inv` of its 128x128 block
             (a multiplier despite the name). A fused `qkv_proj` is stored as S = num_key_value_heads
             checkpoint-TP shards [q_s | k_s | v_s]; each shard's rows are padded to whole 128-row
             blocks on their own, so local row r of shard s uses scale row s*ceil(R/S/128) + r//128.
             Ragged edges: the last block of a row or column range is partial.
  MXFP4      `weight` U8 [N, K/2]: byte j holds element 2j in the low nibble and 2j+1 in the high
             nibble, each an E2M1 code (sign, 2 exponent bits with bias 1, 1 mantissa bit); the
             `weight_scale` U8 [N, K/32] is E8M0, 2^(b-127) for the 32 consecutive K elements (0xFF is
             NaN, rejected).
  BF16, F32  passed through (BF16 widened exactly to float32).
The fused qkv is then split into the q/k/v projections transformers' port expects (all q_s, then
all k_s, then all v_s), everything is written as one F32 safetensors file under the split-q/k/v
names of the bf16 variant, and transformers loads it (every parameter must come from the file).
The three decoders are checked against ml_dtypes' float8_e4m3fn / float4_e2m1fn / float8_e8m0fnu on
every code before use.

Each output directory gets, zstd-compressed (level 19), raw little-endian arrays as in
fixtures/golden/tiny-bf16 (same prompt generator and seed as golden_tiny.py):
  prompt.i32.zst   the 48 prompt ids
  logits.f32.zst   teacher-forced logits [48, vocab]
  hidden.f32.zst   hidden states [layers + 1, 48, hidden] (transformers' convention: the last one after
                   the final norm)
  greedy.i32.zst   32 greedy tokens continuing the prompt (KV cache on)
  golden.json      versions, the exact commands, SHA-256 of every weight file read, the digest of the
                   decoded float32 weights, decode statistics and the config transformers ran
"""
import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import ml_dtypes
import numpy as np
import torch
import zstandard
from safetensors.numpy import save_file
from transformers import MiMoV2FlashForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import mimo_hub  # noqa: E402  (the hub dialect -> transformers' port, shared with the trainers)

PROMPT_SEED = 20261124  # golden_tiny.py's prompt generator
PROMPT_LEN = 48
GREEDY_LEN = 32


# ---------------------------------------------------------------------------------------------
# Element formats, from their definitions.

def e4m3fn_table():
    """float32 value of each of the 256 E4M3FN codes (NaN for S.1111.111)."""
    t = np.zeros(256, np.float64)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e = (b >> 3) & 0xF
        m = b & 0x7
        if e == 0xF and m == 0x7:
            t[b] = np.nan
        elif e == 0:
            t[b] = s * (m / 8.0) * 2.0 ** -6
        else:
            t[b] = s * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return t.astype(np.float32)


def e2m1_table():
    """float32 value of each of the 16 E2M1 codes (no Inf, no NaN)."""
    t = np.zeros(16, np.float64)
    for c in range(16):
        s = -1.0 if c & 0x8 else 1.0
        e = (c >> 1) & 0x3
        m = c & 0x1
        t[c] = s * (0.5 * m if e == 0 else (1.0 + m / 2.0) * 2.0 ** (e - 1))
    return t.astype(np.float32)


def e8m0_table():
    """float32 value of each E8M0 scale byte: 2^(b-127); 0xFF is NaN."""
    t = np.array([2.0 ** (b - 127) for b in range(256)], np.float64)
    t[255] = np.nan
    return t.astype(np.float32)  # 2^-127 is a float32 subnormal, exact


E4M3 = e4m3fn_table()
E2M1 = e2m1_table()
E8M0 = e8m0_table()


def check_tables():
    """The tables above against ml_dtypes (an independent implementation of the same formats)."""
    ref = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    assert np.array_equal(np.isnan(ref), np.isnan(E4M3)), "E4M3 NaN codes"
    assert np.array_equal(ref[~np.isnan(ref)], E4M3[~np.isnan(E4M3)]), "E4M3 values"
    ok = ~np.isnan(ref)
    assert np.array_equal(np.signbit(ref[ok]), np.signbit(E4M3[ok])), "E4M3 signs"
    ref = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert np.array_equal(ref, E2M1) and np.array_equal(np.signbit(ref), np.signbit(E2M1)), "E2M1"
    ref = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float32)
    assert np.array_equal(ref[:255], E8M0[:255]) and np.isnan(ref[255]), "E8M0"


# ---------------------------------------------------------------------------------------------
# safetensors, read directly (header JSON + raw little-endian data).

ST_DTYPES = {"F32": (np.float32, 4), "BF16": (np.uint16, 2), "F8_E4M3": (np.uint8, 1), "U8": (np.uint8, 1),
             "F16": (np.float16, 2)}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, size = ST_DTYPES[info["dtype"]]
        a, b = info["data_offsets"]
        shape = tuple(info["shape"])
        if b - a != size * math.prod(shape):
            raise ValueError(f"{path}: {name}: data size {b - a} does not match {info['dtype']} {shape}")
        arr = np.frombuffer(raw, dtype=np.dtype(dt).newbyteorder("<"), count=math.prod(shape), offset=base + a)
        out[name] = (info["dtype"], arr.reshape(shape))
    return out


def read_checkpoint(d):
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    tensors = {}
    for f in files:
        for k, v in read_safetensors(os.path.join(d, f)).items():
            if k in tensors:
                raise ValueError(f"{d}: tensor {k} in two files")
            tensors[k] = v
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        wm = json.load(open(idx))["weight_map"]
        if set(wm) != set(tensors):
            raise ValueError(f"{d}: index and shards disagree")
    return tensors


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Dequantization.

def bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def fp8_block_dequant(name, w, scale, shards=1, block=128):
    """w: uint8 E4M3 codes [R, C]; scale: float32 [SR, SC]; the row grid restarts in each of the
    `shards` equal row ranges."""
    R, C = w.shape
    if R % shards:
        raise ValueError(f"{name}: {R} rows do not split into {shards} shards")
    rs = R // shards
    rb = -(-rs // block)
    cb = -(-C // block)
    if scale.shape != (shards * rb, cb):
        raise ValueError(f"{name}: scale grid {scale.shape}, expected {(shards * rb, cb)} for {shards} shard(s)")
    vals = E4M3[w]
    if np.isnan(vals).any():
        r, c = np.argwhere(np.isnan(vals))[0]
        raise ValueError(f"{name}: NaN FP8 code at [{r}, {c}]")
    if not np.isfinite(scale).all():
        raise ValueError(f"{name}: non-finite scale")
    rows = np.arange(R)
    srow = (rows // rs) * rb + (rows % rs) // block
    scol = np.arange(C) // block
    return (vals * scale[srow][:, scol]).astype(np.float32)


def mxfp4_dequant(name, codes, scale, block=32):
    """codes: uint8 [N, K/2] (low nibble = even element); scale: uint8 E8M0 [N, K/32]."""
    N, half = codes.shape
    K = 2 * half
    if scale.shape != (N, K // block) or K % block:
        raise ValueError(f"{name}: scale {scale.shape}, expected {(N, K // block)}")
    if (scale == 0xFF).any():
        r, c = np.argwhere(scale == 0xFF)[0]
        raise ValueError(f"{name}: E8M0 scale 0xFF (NaN) at [{r}, {c}]")
    el = np.empty((N, K), np.uint8)
    el[:, 0::2] = codes & 0x0F
    el[:, 1::2] = codes >> 4
    vals = E2M1[el]
    return (vals * np.repeat(E8M0[scale], block, axis=1)).astype(np.float32)


def split_fused_qkv(name, w, shards, nq, nkv, dqk, dv):
    """[S x (q_s | k_s | v_s), H] -> q [nq*dqk, H], k [nkv*dqk, H], v [nkv*dv, H]."""
    if nq % shards:
        raise ValueError(f"{name}: {nq} query heads over {shards} shards")
    kvs = max(1, nkv // shards)
    qn, kn, vn = nq // shards * dqk, kvs * dqk, kvs * dv
    if w.shape[0] != shards * (qn + kn + vn):
        raise ValueError(f"{name}: {w.shape[0]} rows, expected {shards} x ({qn}+{kn}+{vn})")
    parts = w.reshape(shards, qn + kn + vn, -1)
    q = parts[:, :qn].reshape(-1, w.shape[1])
    k = parts[:, qn:qn + kn].reshape(-1, w.shape[1])
    v = parts[:, qn + kn:].reshape(-1, w.shape[1])
    return q, k, v


def dequantize_checkpoint(d, hub):
    """Every tensor of the checkpoint in d as float32 under the split-q/k/v names, plus counts."""
    src = read_checkpoint(d)
    qc = hub.get("quantization_config") or {}
    store = qc.get("store_dtype", "fp8")
    block = qc.get("weight_block_size", [128, 128])
    if block != [128, 128]:
        raise ValueError(f"{d}: weight_block_size {block} (this oracle decodes 128x128 only)")
    mx_block = qc.get("mxfp4_block_size", 32)
    pattern = hub["hybrid_layer_pattern"]
    S = hub["num_key_value_heads"]  # checkpoint-TP shard count of the fused qkv (mimo_arch.md 3.3, 4.4)
    out = {}
    stats = {"F8_E4M3": 0, "MXFP4": 0, "BF16": 0, "F32": 0, "qkv_split": 0}
    for name, (dt, arr) in sorted(src.items()):
        if name.endswith(".weight_scale_inv") or name.endswith(".weight_scale"):
            base = name.rsplit(".", 1)[0] + ".weight"
            if base not in src:
                raise ValueError(f"{d}: {name} without {base}")
            continue
        if dt == "F8_E4M3":
            sname = name + "_scale_inv"
            if sname not in src or src[sname][0] != "F32":
                raise ValueError(f"{d}: {name}: F8_E4M3 without an F32 {sname}")
            shards = S if name.endswith("self_attn.qkv_proj.weight") else 1
            val = fp8_block_dequant(name, arr, src[sname][1], shards)
            stats["F8_E4M3"] += 1
        elif dt == "U8":
            sname = name + "_scale"
            if store != "mxfp4" or sname not in src or src[sname][0] != "U8":
                raise ValueError(f"{d}: {name}: U8 weight without store_dtype mxfp4 and a U8 {sname}")
            val = mxfp4_dequant(name, arr, src[sname][1], mx_block)
            stats["MXFP4"] += 1
        elif dt == "BF16":
            val = bf16_to_f32(arr)
            stats["BF16"] += 1
        elif dt == "F32":
            val = arr.astype(np.float32)
            stats["F32"] += 1
        else:
            raise ValueError(f"{d}: {name}: dtype {dt} not expected in a MiMo checkpoint")
        if not np.isfinite(val).all():
            raise ValueError(f"{d}: {name}: non-finite value after decoding")
        m = re.fullmatch(r"model\.layers\.(\d+)\.self_attn\.qkv_proj\.weight", name)
        if m:
            swa = pattern[int(m.group(1))] == 1
            nq = hub["swa_num_attention_heads"] if swa else hub["num_attention_heads"]
            nkv = hub["swa_num_key_value_heads"] if swa else hub["num_key_value_heads"]
            dqk = hub["swa_head_dim"] if swa else hub["head_dim"]
            dv = hub["swa_v_head_dim"] if swa else hub["v_head_dim"]
            q, k, v = split_fused_qkv(name, val, S, nq, nkv, dqk, dv)
            pre = name[:-len("qkv_proj.weight")]
            out[pre + "q_proj.weight"] = np.ascontiguousarray(q)
            out[pre + "k_proj.weight"] = np.ascontiguousarray(k)
            out[pre + "v_proj.weight"] = np.ascontiguousarray(v)
            stats["qkv_split"] += 1
        else:
            out[name] = np.ascontiguousarray(val)
    return out, stats


def state_digest(state):
    h = hashlib.sha256()
    for k in sorted(state):
        a = np.ascontiguousarray(state[k], dtype="<f4")
        h.update(k.encode() + b"\0" + json.dumps(list(a.shape)).encode() + b"\0")
        h.update(a.tobytes())
    return h.hexdigest()


def sqnr_db(ref, x):
    e = float(np.sum((ref.astype(np.float64) - x) ** 2))
    s = float(np.sum(ref.astype(np.float64) ** 2))
    return float("inf") if e == 0 else 10 * math.log10(s / e)


# ---------------------------------------------------------------------------------------------
# transformers.

def run_model(state, cfg, work, prompt):
    tr = os.path.join(work, "tr")
    os.makedirs(tr)
    cfg.save_pretrained(tr)
    save_file(state, os.path.join(tr, "model.safetensors"), metadata={"format": "pt"})
    torch.manual_seed(0)
    model, info = MiMoV2FlashForCausalLM.from_pretrained(tr, dtype=torch.float32, output_loading_info=True)
    model.eval()
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise RuntimeError(f"transformers did not take every weight from the file: {bad}")
    for n, p in model.named_parameters():
        if p.dtype != torch.float32:
            raise RuntimeError(f"{n} is {p.dtype}, not float32")
    ids = torch.tensor(prompt[None, :].astype(np.int64))
    with torch.no_grad():
        o = model(ids, output_hidden_states=True, use_cache=False)
        logits = o.logits[0].float().numpy()
        hidden = torch.stack([h[0] for h in o.hidden_states]).float().numpy()
        gen = model.generate(ids, max_new_tokens=GREEDY_LEN, do_sample=False, use_cache=True,
                             eos_token_id=None, pad_token_id=0)
    greedy = gen[0, len(prompt):].numpy().astype(np.int32)
    del model
    shutil.rmtree(tr)
    return logits, hidden, greedy


def write_zst(path, arr):
    data = np.ascontiguousarray(arr).tobytes()
    with open(path + ".zst", "wb") as f:
        f.write(zstandard.ZstdCompressor(level=19, write_content_size=True).compress(data))


def file_digests(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in sorted(files):
            p = os.path.join(root, f)
            rel = os.path.relpath(p, d)
            if rel.endswith(".safetensors") or rel in ("config.json", "model.safetensors.index.json"):
                if not rel.startswith("dflash"):
                    out[rel] = {"size": os.path.getsize(p), "sha256": sha256_file(p)}
    return dict(sorted(out.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mkfixture")
    ap.add_argument("quantize")
    ap.add_argument("out_fp8")
    ap.add_argument("out_mxfp4")
    ap.add_argument("--seed", type=int, default=1, help="mimo-mkfixture seed (default 1)")
    ap.add_argument("--bf16-golden", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                          "fixtures", "golden", "tiny-bf16"),
                    help="golden_tiny.py's output (zstd'd) that the bf16 variant must reproduce through this "
                         "script's path; '' to skip (default: the committed fixtures/golden/tiny-bf16)")
    a = ap.parse_args()
    check_tables()
    work = tempfile.mkdtemp(prefix="mimo-golden-quant-")
    try:
        bf16_dir = os.path.join(work, "bf16")
        fp8_dir = os.path.join(work, "fp8")
        mx_dir = os.path.join(work, "mxfp4")
        cmd_bf16 = [a.mkfixture, "--preset", "tiny", "--variant", "bf16", "--seed", str(a.seed), "--out", bf16_dir,
                    "--no-drafter", "-q"]
        cmd_fp8 = [a.mkfixture, "--preset", "tiny", "--variant", "fp8", "--seed", str(a.seed), "--out", fp8_dir, "-q"]
        cmd_mx = [a.quantize, fp8_dir, mx_dir, "-q"]
        for c in (cmd_bf16, cmd_fp8, cmd_mx):
            subprocess.run(c, check=True, stdout=subprocess.DEVNULL)
        hub = json.load(open(os.path.join(fp8_dir, "config.json")))
        cfg = mimo_hub.hub_to_port(hub)
        # The bf16 fixture (same seed) is the unquantized reference: decoded weights are compared with
        # it tensor by tensor (a wrong grid or nibble order shows as a collapsed SQNR).
        bf16_hub = json.load(open(os.path.join(bf16_dir, "config.json")))
        ref = {k: bf16_to_f32(v) if dt == "BF16" else v.astype(np.float32)
               for k, (dt, v) in read_checkpoint(bf16_dir).items()}
        rng = np.random.default_rng(PROMPT_SEED)
        prompt = rng.integers(0, hub["vocab_size"] - 8, size=PROMPT_LEN).astype(np.int32)
        import transformers
        sym = {bf16_dir: "BF16_DIR", fp8_dir: "FP8_DIR", mx_dir: "MXFP4_DIR",
               a.mkfixture: "mimo-mkfixture", a.quantize: "mimo-quantize"}
        show = lambda c: " ".join(sym.get(x, x) for x in c)
        results = {}
        for label, d, out in (("fp8", fp8_dir, a.out_fp8), ("mxfp4", mx_dir, a.out_mxfp4)):
            os.makedirs(out, exist_ok=True)
            hub_d = json.load(open(os.path.join(d, "config.json")))
            state, stats = dequantize_checkpoint(d, hub_d)
            if set(state) != set(ref):
                raise RuntimeError(f"{label}: decoded names differ from the bf16 variant's: "
                                   f"{sorted(set(state) ^ set(ref))[:5]}")
            per_class = {}
            worst = (float("inf"), "")
            for k in sorted(state):
                if state[k].shape != ref[k].shape:
                    raise RuntimeError(f"{label}: {k}: shape {state[k].shape} vs bf16 {ref[k].shape}")
                cls = ("experts" if ".experts." in k else "qkv" if re.search(r"\.[qkv]_proj\.", k)
                       else "dense_mlp" if re.search(r"layers\.\d+\.mlp\.(gate|up|down)_proj", k) else "other")
                s = sqnr_db(ref[k], state[k])
                per_class.setdefault(cls, []).append(s)
                if cls != "other" and s < worst[0]:
                    worst = (s, k)
                if cls == "other" and s != float("inf"):
                    raise RuntimeError(f"{label}: {k} should pass through unchanged (SQNR {s:.1f} dB)")
            sq = {c: {"min_db": round(min(v), 2), "mean_db": round(float(np.mean(v)), 2), "tensors": len(v)}
                  for c, v in per_class.items() if c != "other"}
            # E4M3 keeps 3 mantissa bits (~31 dB on Gaussian weights); a misplaced scale or a wrong q/k/v
            # split drops a tensor far below. MXFP4 on top of FP8 is ~19 dB; swapped nibbles are < 0 dB.
            floor = {"qkv": 28.0, "dense_mlp": 28.0, "experts": 28.0 if label == "fp8" else 15.0}
            for c, v in per_class.items():
                if c != "other" and min(v) < floor[c]:
                    raise RuntimeError(f"{label}: {c} weights decode to {min(v):.1f} dB against the bf16 fixture")
            xcheck = None
            if label == "mxfp4":
                # Each MXFP4 tensor against the FP8 tensor it was made from, decoded here, and the SQNR
                # mimo-quantize reported for it: two independent decodes must agree.
                fp8_src = read_checkpoint(fp8_dir)
                rep = {t["name"]: t for t in json.load(open(os.path.join(d, "mimo-quant-report.json")))["tensors"]}
                diffs = []
                for k in sorted(state):
                    if ".experts." not in k:
                        continue
                    src_v = fp8_block_dequant(k, fp8_src[k][1], fp8_src[k + "_scale_inv"][1])
                    diffs.append(abs(sqnr_db(src_v, state[k]) - rep[k]["sqnr_db"]))
                xcheck = {"tensors": len(diffs), "max_abs_sqnr_diff_db": round(max(diffs), 5)}
                print(f"mxfp4: SQNR vs FP8 source, this decode vs mimo-quant-report.json: {xcheck}")
                if max(diffs) > 0.01:
                    raise RuntimeError("MXFP4 decode disagrees with mimo-quantize's report")
            logits, hidden, greedy = run_model(state, cfg, work, prompt)
            write_zst(os.path.join(out, "prompt.i32"), prompt.astype("<i4"))
            write_zst(os.path.join(out, "logits.f32"), logits.astype("<f4"))
            write_zst(os.path.join(out, "hidden.f32"), hidden.astype("<f4"))
            write_zst(os.path.join(out, "greedy.i32"), greedy.astype("<i4"))
            meta = {
                "checkpoint": label,
                "commands": [show(cmd_fp8)] + ([show(cmd_mx)] if label == "mxfp4" else []),
                "reference_for_weight_sqnr": show(cmd_bf16),
                "oracle": "python3 tools/oracle/golden_quant.py MKFIXTURE QUANTIZE OUT_FP8 OUT_MXFP4 --seed %d" % a.seed,
                "transformers": transformers.__version__, "torch": torch.__version__, "numpy": np.__version__,
                "ml_dtypes": ml_dtypes.__version__, "dtype": "float32",
                "prompt_seed": PROMPT_SEED, "prompt_len": PROMPT_LEN, "vocab": int(logits.shape[1]),
                "hidden_shape": list(hidden.shape), "greedy_len": int(greedy.shape[0]),
                "weight_files_sha256": file_digests(d),
                "decoded_f32_weights_sha256": state_digest(state),
                "decoded_tensor_counts": stats,
                "fused_qkv_shards": hub_d["num_key_value_heads"],
                "weight_sqnr_vs_bf16_fixture": sq,
                "worst_weight_sqnr": {"tensor": worst[1], "db": round(worst[0], 2)},
                "mxfp4_sqnr_vs_fp8_source_agrees_with_quant_report": xcheck,
                "config": cfg.to_dict(),
            }
            if label == "mxfp4":
                man = json.load(open(os.path.join(d, "mimo-manifest.json")))
                meta["mimo_quantize"] = {"tool_version": man.get("tool_version"), "options": man.get("options")}
            json.dump(meta, open(os.path.join(out, "golden.json"), "w"), indent=2, sort_keys=True, default=str)
            results[label] = (logits, hidden, greedy)
            print(f"{label}: tensors {stats}; weight SQNR vs bf16 {sq}")
            print(f"{label}: logits {logits.shape} hidden {hidden.shape} greedy {greedy.tolist()}")
        # The same path (decoded F32 file -> transformers) on the bf16 variant must give golden_tiny.py's
        # outputs; then how far quantization moves the outputs (information only).
        if mimo_hub.hub_to_port(bf16_hub).to_dict() != cfg.to_dict():
            raise RuntimeError("the bf16 and fp8 fixtures translate to different transformers configs")
        bf = run_model(ref, cfg, work, prompt)
        gdir = a.bf16_golden
        if gdir and os.path.isdir(gdir):
            def rd(n, dt):
                return np.frombuffer(zstandard.ZstdDecompressor().decompress(
                    open(os.path.join(gdir, n + ".zst"), "rb").read()), dt)
            gp, gl, gg = rd("prompt.i32", "<i4"), rd("logits.f32", "<f4"), rd("greedy.i32", "<i4")
            if not np.array_equal(gp, prompt):
                raise RuntimeError(f"{gdir}: prompt differs from this script's")
            d = np.abs(gl.reshape(bf[0].shape) - bf[0]).max()
            print(f"bf16 through this path vs {gdir}: logits max |diff| {d:.3g}, greedy "
                  f"{'equal' if np.array_equal(gg, bf[2]) else 'DIFFERENT'}")
            if d > 1e-4 or not np.array_equal(gg, bf[2]):
                raise RuntimeError("the decode/load path does not reproduce the bf16 golden")
        for label, (lg, hd, gr) in results.items():
            rel = np.linalg.norm(lg - bf[0]) / np.linalg.norm(bf[0])
            same = int(np.sum(np.argmax(lg, 1) == np.argmax(bf[0], 1)))
            print(f"{label} vs bf16 fixture: logits rel L2 {rel:.3g}, argmax agrees on {same}/{PROMPT_LEN} rows, "
                  f"greedy tokens equal before first difference: "
                  f"{int(np.argmax(np.append(gr != bf[2], True)))}/{GREEDY_LEN}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
