"""PyTorch itself reads what we write: the checks that need torch, run where torch is installed
(the GPU test host). Exits 77 (skipped) when torch is missing.

usage: torch_interop.py MKFIXTURE WORKDIR

1. mask_embedding.pt from our zip writer loads with torch.load(weights_only=True) into
   {"mask_token_id": int, "embedding": bfloat16[H]} whose values equal the bytes of the stored
   data/0 entry, and whose id equals dflash/config.json's mask_token_id.
2. safetensors.torch.load_file loads every shard of both tiny fixtures; torch's float8_e4m3fn
   decode of the FP8 weights, times the F32 scale grid (per checkpoint-TP shard for the fused
   qkv, mimo_arch.md 4.4), equals the BF16 fixture's weights to within FP8 precision: SQNR > 28 dB
   per tensor (E4M3 keeps 3 mantissa bits, about 31 dB on Gaussian data). This checks our FP8
   encoder against torch's decoder and our fused layout against an independent de-interleave.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import zipfile

try:
    import torch
    from safetensors.torch import load_file
except ImportError:
    print("torch or safetensors missing: skipped")
    sys.exit(77)


def load_dir(d):
    out = {}
    idx = os.path.join(d, "model.safetensors.index.json")
    files = set(json.load(open(idx))["weight_map"].values()) if os.path.exists(idx) else {"model.safetensors"}
    for f in sorted(files):
        out.update(load_file(os.path.join(d, f)))
    return out


def sqnr(ref, x):
    ref = ref.double()
    e = (ref - x.double()).pow(2).sum().item()
    s = ref.pow(2).sum().item()
    return math.inf if e == 0 else 10 * math.log10(s / e)


def dequant(w, s, shards):
    rows, cols = w.shape
    rs = rows // shards
    bps = (rs + 127) // 128
    r = torch.arange(rows)
    srow = (r // rs) * bps + (r % rs) // 128
    scale = s[srow][:, torch.arange(cols) // 128]
    return w.float() * scale


def main():
    mk, work = sys.argv[1], sys.argv[2]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    fails = 0
    for v in ("bf16", "fp8"):
        subprocess.run([mk, "--preset", "tiny", "--variant", v, "--out", os.path.join(work, v), "-q"], check=True)
    # 1. mask embedding
    ddir = os.path.join(work, "bf16", "dflash")
    path = os.path.join(ddir, "mask_embedding.pt")
    obj = torch.load(path, weights_only=True)
    cfg = json.load(open(os.path.join(ddir, "config.json")))
    raw = None
    with zipfile.ZipFile(path) as z:
        for n in z.namelist():
            if n.endswith("/data/0"):
                raw = z.read(n)
    emb = obj["embedding"]
    ok = (set(obj) == {"mask_token_id", "embedding"} and obj["mask_token_id"] == cfg["dflash_config"]["mask_token_id"]
          and emb.dtype == torch.bfloat16 and emb.shape == (cfg["hidden_size"],)
          and emb.contiguous().view(torch.uint8).numpy().tobytes() == raw)
    print(f"torch.load mask_embedding.pt: id {obj['mask_token_id']}, {emb.dtype} {tuple(emb.shape)}: {'ok' if ok else 'MISMATCH'}")
    fails += not ok
    # 2. FP8 through torch against BF16
    b = load_dir(os.path.join(work, "bf16"))
    f = load_dir(os.path.join(work, "fp8"))
    cfgf = json.load(open(os.path.join(work, "fp8", "config.json")))
    S = cfgf["num_key_value_heads"]
    worst, n = math.inf, 0
    for name, w in f.items():
        if w.dtype != torch.float8_e4m3fn:
            continue
        s = f[name + "_scale_inv"]
        if "qkv_proj" in name:
            pre = name[: name.index("qkv_proj")]
            q, k, vv = (b[pre + p + "_proj.weight"].float() for p in "qkv")
            parts = []
            for sh in range(S):
                for t in (q, k, vv):
                    r = t.shape[0] // S
                    parts.append(t[sh * r:(sh + 1) * r])
            ref = torch.cat(parts)
            x = dequant(w, s, S)
        else:
            ref = b[name].float()
            x = dequant(w, s, 1)
        q_db = sqnr(ref, x)
        worst = min(worst, q_db)
        n += 1
        if not q_db > 28.0:
            print(f"{name}: SQNR {q_db:.2f} dB")
            fails += 1
    print(f"torch float8_e4m3fn decode vs BF16 fixture: {n} tensors, worst SQNR {worst:.2f} dB")
    if n == 0:
        fails += 1
    print("PASS" if fails == 0 else f"FAIL ({fails})")
    sys.exit(1 if fails else 0)


main()
