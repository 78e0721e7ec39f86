#!/usr/bin/env python3
"""export_fp8.py: a BF16/F32 MiMo checkpoint in the hub dialect -> the block-128 FP8 layout.

    python3 tools/train/export_fp8.py SRC_DIR DST_DIR [-q]

SRC_DIR holds a MiMo-V2-Flash-style checkpoint (model_type mimo_v2_flash, split q/k/v, BF16 or
F32 tensors; config.json, model.safetensors or shards with model.safetensors.index.json).
DST_DIR receives the layout of Xiaomi's MiMo-V2.5 FP8 checkpoints, exactly as
`mimo-mkfixture --variant fp8` writes it (docs/cli.md, docs/formats.md,
shared/reference/mimo_arch.md 3.3 and 4.4):

* config.json: the source's keys in their order, with architectures MiMoV2ForCausalLM,
  model_type mimo_v2, attention_projection_layout "fused_qkv" after attention_bias, torch_dtype
  bfloat16, and quantization_config {activation_scheme dynamic, fmt e4m3, quant_method fp8,
  weight_block_size [128, 128], ignored_layers = every layer's self_attn.o_proj}.
* self_attn.qkv_proj.weight: q, k and v fused and interleaved over S checkpoint-TP shards,
  S = num_key_value_heads (shard s = [q_s | k_s | v_s]).
* Every linear except o_proj, lm_head and the router (qkv_proj, the dense MLP's and every
  expert's gate/up/down_proj) as F8_E4M3 with an F32 `weight_scale_inv` grid of 128x128 blocks;
  the qkv grid restarts at each shard, so it has S * ceil(rows / S / 128) rows.
* The router (mlp.gate.weight, mlp.gate.e_score_correction_bias) F32; everything else
  (embeddings, lm_head, norms, o_proj, sinks) BF16 (a BF16 source tensor is copied byte for byte,
  an F32 one rounded to nearest even).
* One model.safetensors (mimo-mkfixture writes an index only for several shards) with
  __metadata__ {"format": "pt"}, and the tokenizer files copied. A dflash/ drafter is not copied:
  the drafter reads the target's taps, not its weight format, so the source's drafter pairs with
  the output as it is.

Quantization follows libquant/fp8block.c lq_fp8_block_quant exactly, in float32: per block,
amax = max |w|; scale = amax / 448 (one float32 division); a scale that is not > 0 (an all-zero
block, or an amax so small that the quotient underflows) becomes 1; q = e4m3(w / scale) rounded
to nearest even and saturated at +-448; the grid stores scale, so dequantization is q * scale.
Same input, same output bytes.

Exit status: 0 written, 2 usage, 3 bad input or I/O (the message names the file, the item and
the rule). The whole checkpoint is held in memory (fine for the small models this is for).
"""
import argparse
import json
import os
import shutil
import sys

import ml_dtypes
import numpy as np
import safetensors
from safetensors.numpy import save_file

PROG = "export_fp8.py"
BLOCK = 128
E4M3_MAX = np.float32(448.0)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "added_tokens.json", "generation_config.json", "chat_template.jinja")
# The hub keys this converter reads; every shipped hub config carries them.
REQUIRED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "hybrid_layer_pattern", "moe_layer_freq",
                 "num_attention_heads", "num_key_value_heads", "head_dim", "v_head_dim",
                 "swa_num_attention_heads", "swa_num_key_value_heads", "swa_head_dim", "swa_v_head_dim",
                 "add_swa_attention_sink_bias", "add_full_attention_sink_bias", "intermediate_size",
                 "moe_intermediate_size", "n_routed_experts")


class ExportError(Exception):
    """Bad input or I/O: where (file), what (item), which rule, and why."""

    def __init__(self, file, item, rule, msg):
        super().__init__(": ".join(p for p in (file, item, rule, msg) if p))


# ---- the quantizer (lq_fp8_block_quant) ----

def quantize_block128(w, shards=1):
    """w: float32 [rows, cols], rows % shards == 0. Returns (q uint8 [rows, cols] E4M3 codes,
    scale float32 [shards * ceil(rows / shards / 128), ceil(cols / 128)]). Row blocks restart at
    each shard; edge blocks are ragged (padding with zeros leaves every block's amax unchanged)."""
    rows, cols = w.shape
    rs = rows // shards
    nbr, nbc = -(-rs // BLOCK), -(-cols // BLOCK)
    padded = np.zeros((shards, nbr * BLOCK, nbc * BLOCK), dtype=np.float32)
    padded[:, :rs, :cols] = w.reshape(shards, rs, cols)
    blocks = padded.reshape(shards, nbr, BLOCK, nbc, BLOCK)
    amax = np.abs(blocks).max(axis=(2, 4))                      # [shards, nbr, nbc], exact
    scale = (amax / E4M3_MAX).astype(np.float32)                # one float32 division, as in C
    scale[~(scale > 0)] = np.float32(1.0)
    x = blocks / scale[:, :, None, :, None]                     # float32 / float32, correctly rounded
    # Saturate first: ml_dtypes turns |x| > 464 into NaN, the C encoder clamps to 448; values in
    # (448, 464] round to 448 either way, so clipping at 448 gives the C result in every case.
    x = np.clip(x, -E4M3_MAX, E4M3_MAX)
    q = x.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)       # round to nearest even
    q = q.reshape(shards, nbr * BLOCK, nbc * BLOCK)[:, :rs, :cols].reshape(rows, cols)
    return np.ascontiguousarray(q), np.ascontiguousarray(scale.reshape(shards * nbr, nbc))


def dequantize_block128(q, scale, shards=1):
    """The inverse view (q * scale in float32), for the SQNR printed per tensor."""
    rows, cols = q.shape
    rs = rows // shards
    nbr = -(-rs // BLOCK)
    v = q.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    r = np.arange(rows)
    srow = (r // rs) * nbr + (r % rs) // BLOCK
    s = np.repeat(scale, BLOCK, axis=1)[:, :cols]
    return v * s[srow]


# ---- reading the source ----

def read_json(path, what):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise ExportError(path, what, "MISSING", "file not found")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExportError(path, what, "JSON", f"not valid JSON: {e}")
    except OSError as e:
        raise ExportError(path, what, "IO", e.strerror or str(e))


def load_tensors(src):
    """name -> (dtype, shape, raw bytes, file) for every tensor of the checkpoint in src."""
    index = os.path.join(src, "model.safetensors.index.json")
    if os.path.exists(index):
        idx = read_json(index, "weight_map")
        wm = idx.get("weight_map") if isinstance(idx, dict) else None
        if not isinstance(wm, dict) or not wm or not all(isinstance(v, str) for v in wm.values()):
            raise ExportError(index, "weight_map", "INDEX", "must be a non-empty object of tensor -> file")
        for v in wm.values():
            if os.path.basename(v) != v:
                raise ExportError(index, v, "INDEX", "shard names must be plain file names in the directory")
        files = sorted(set(wm.values()))
    elif os.path.exists(os.path.join(src, "model.safetensors")):
        wm, files = None, ["model.safetensors"]
    else:
        raise ExportError(src, "model.safetensors", "MISSING",
                          "neither model.safetensors nor model.safetensors.index.json")
    out = {}
    for fn in files:
        path = os.path.join(src, fn)
        try:
            with open(path, "rb") as f:
                data = f.read()
            items = safetensors.deserialize(data)
        except OSError as e:
            raise ExportError(path, None, "IO", e.strerror or str(e))
        except Exception as e:  # the reader's own errors (header, offsets, ...)
            raise ExportError(path, None, "SAFETENSORS", f"not a valid safetensors file: {e}")
        for name, t in items:
            if name in out:
                raise ExportError(path, name, "DUPLICATE", f"also in {out[name][3]}")
            if wm is not None and wm.get(name) != fn:
                raise ExportError(path, name, "INDEX", f"the index maps it to {wm.get(name)!r}")
            out[name] = (t["dtype"], tuple(t["shape"]), bytes(t["data"]), path)
    if wm is not None:
        for name in sorted(wm):
            if name not in out:
                raise ExportError(index, name, "INDEX", f"listed for {wm[name]} but not in it")
    return out


def as_f32(name, t):
    """The tensor's values as float32 (exact for BF16 and F32), refusing non-finite values."""
    dtype, shape, data, path = t
    if dtype == "BF16":
        a = np.frombuffer(data, dtype=ml_dtypes.bfloat16).astype(np.float32)
    elif dtype == "F32":
        a = np.frombuffer(data, dtype=np.float32).copy()
    else:
        raise ExportError(path, name, "TENSOR_DTYPE", f"dtype {dtype} (this converter reads BF16 or F32)")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise ExportError(path, name, "TENSOR_NONFINITE",
                          f"element {int(bad[0])} is {a[bad[0]]} ({bad.size} non-finite in all)")
    return a.reshape(shape)


# ---- the layout ----

def plan(cfg, cfg_path):
    """Expected source tensors: name -> (shape, role); role is 'bf16', 'f32' or 'fp8', or
    'qkv:L' for the q/k/v parts that fuse into layer L's qkv_proj."""
    if cfg.get("model_type") != "mimo_v2_flash":
        raise ExportError(cfg_path, "model_type", "CFG_MODEL_TYPE",
                          f"is {cfg.get('model_type')!r}; the source must be a mimo_v2_flash checkpoint "
                          "with split q/k/v (a mimo_v2 checkpoint is already fused)")
    if cfg.get("quantization_config") is not None:
        raise ExportError(cfg_path, "quantization_config", "CFG_QUANTIZED",
                          "the source is already quantized; export from the BF16/F32 checkpoint")
    if cfg.get("attention_projection_layout", "split") != "split":
        raise ExportError(cfg_path, "attention_projection_layout", "CFG_VALUE",
                          f"is {cfg['attention_projection_layout']!r}; the source must have split q/k/v")
    for k in REQUIRED_KEYS:
        if k not in cfg:
            raise ExportError(cfg_path, k, "CFG_KEY", "is required (hub dialect)")
    ints = [k for k in REQUIRED_KEYS if not k.startswith("add_") and k not in ("hybrid_layer_pattern",
                                                                             "moe_layer_freq")]
    for k in ints:
        if not isinstance(cfg[k], int) or isinstance(cfg[k], bool) or cfg[k] < 1:
            raise ExportError(cfg_path, k, "CFG_KEY", f"must be a positive integer, is {cfg[k]!r}")
    n = cfg["num_hidden_layers"]
    for k in ("hybrid_layer_pattern", "moe_layer_freq"):
        v = cfg[k]
        if not isinstance(v, list) or len(v) != n or any(x not in (0, 1) or isinstance(x, bool) for x in v):
            raise ExportError(cfg_path, k, "CFG_PATTERN", f"must be {n} values of 0 or 1")
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    S = cfg["num_key_value_heads"]
    exp = {"model.embed_tokens.weight": ((V, H), "bf16"), "model.norm.weight": ((H,), "bf16")}
    if not cfg.get("tie_word_embeddings", False):
        exp["lm_head.weight"] = ((V, H), "bf16")
    for L in range(n):
        swa = cfg["hybrid_layer_pattern"][L] == 1
        nq = cfg["swa_num_attention_heads" if swa else "num_attention_heads"]
        nkv = cfg["swa_num_key_value_heads" if swa else "num_key_value_heads"]
        dqk = cfg["swa_head_dim" if swa else "head_dim"]
        dv = cfg["swa_v_head_dim" if swa else "v_head_dim"]
        if nq % S or nkv % S:
            # nkv < S would need replicated KV heads per shard, which our runtime does not load.
            raise ExportError(cfg_path, "num_key_value_heads", "QKV_SHARDS",
                              f"layer {L}: {nq} q heads and {nkv} KV heads do not split into S = "
                              f"num_key_value_heads = {S} checkpoint-TP shards")
        p = f"model.layers.{L}"
        exp[f"{p}.input_layernorm.weight"] = ((H,), "bf16")
        exp[f"{p}.post_attention_layernorm.weight"] = ((H,), "bf16")
        exp[f"{p}.self_attn.q_proj.weight"] = ((nq * dqk, H), f"qkv:{L}")
        exp[f"{p}.self_attn.k_proj.weight"] = ((nkv * dqk, H), f"qkv:{L}")
        exp[f"{p}.self_attn.v_proj.weight"] = ((nkv * dv, H), f"qkv:{L}")
        exp[f"{p}.self_attn.o_proj.weight"] = ((H, nq * dv), "bf16")
        if cfg["add_swa_attention_sink_bias" if swa else "add_full_attention_sink_bias"]:
            exp[f"{p}.self_attn.attention_sink_bias"] = ((nq,), "bf16")
        if cfg["moe_layer_freq"][L] == 0:
            I = cfg["intermediate_size"]
            exp[f"{p}.mlp.gate_proj.weight"] = ((I, H), "fp8")
            exp[f"{p}.mlp.up_proj.weight"] = ((I, H), "fp8")
            exp[f"{p}.mlp.down_proj.weight"] = ((H, I), "fp8")
            continue
        E, I = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
        exp[f"{p}.mlp.gate.weight"] = ((E, H), "f32")
        exp[f"{p}.mlp.gate.e_score_correction_bias"] = ((E,), "f32")
        for e in range(E):
            exp[f"{p}.mlp.experts.{e}.gate_proj.weight"] = ((I, H), "fp8")
            exp[f"{p}.mlp.experts.{e}.up_proj.weight"] = ((I, H), "fp8")
            exp[f"{p}.mlp.experts.{e}.down_proj.weight"] = ((H, I), "fp8")
    return exp, S


def check_inventory(exp, tensors, src):
    for name in sorted(tensors):
        if name not in exp:
            raise ExportError(tensors[name][3], name, "TENSOR_UNEXPECTED",
                              "not part of the checkpoint config.json describes (an MTP layer, a fused or "
                              "already-quantized tensor, or a name from another dialect)")
    for name in sorted(exp):
        if name not in tensors:
            raise ExportError(src, name, "TENSOR_MISSING", "config.json implies it; no shard holds it")
        shape, _ = exp[name]
        if tensors[name][1] != shape:
            raise ExportError(tensors[name][3], name, "TENSOR_SHAPE",
                              f"shape {list(tensors[name][1])}, config.json implies {list(shape)}")
        if tensors[name][0] not in ("BF16", "F32"):
            raise ExportError(tensors[name][3], name, "TENSOR_DTYPE",
                              f"dtype {tensors[name][0]} (this converter reads BF16 or F32)")


def fused_qkv(tensors, L, S):
    """Layer L's q, k, v (float32) interleaved over S shards: shard s = [q_s | k_s | v_s]."""
    p = f"model.layers.{L}.self_attn"
    parts = [as_f32(f"{p}.{x}_proj.weight", tensors[f"{p}.{x}_proj.weight"]) for x in "qkv"]
    rows = []
    for s in range(S):
        for w in parts:
            r = w.shape[0] // S
            rows.append(w[s * r:(s + 1) * r])
    return np.concatenate(rows, axis=0)


def build_config(cfg):
    """The source config with mimo-mkfixture's fp8 differences from its bf16 config."""
    out = {}
    for k, v in cfg.items():
        if k == "architectures":
            v = ["MiMoV2ForCausalLM"]
        elif k == "model_type":
            v = "mimo_v2"
        elif k == "torch_dtype":
            v = "bfloat16"
        elif k == "attention_projection_layout":
            continue
        out[k] = v
        if k == "attention_bias":
            out["attention_projection_layout"] = "fused_qkv"
    out.setdefault("architectures", ["MiMoV2ForCausalLM"])
    out.setdefault("attention_projection_layout", "fused_qkv")
    out["quantization_config"] = {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "quant_method": "fp8",
        "weight_block_size": [BLOCK, BLOCK],
        "ignored_layers": [f"model.layers.{L}.self_attn.o_proj" for L in range(cfg["num_hidden_layers"])],
    }
    return out


def sqnr_db(ref, got):
    num = float(np.sum(ref.astype(np.float64) ** 2))
    den = float(np.sum((ref.astype(np.float64) - got.astype(np.float64)) ** 2))
    if den == 0.0:
        return float("inf")
    return 10.0 * np.log10(num / den) if num > 0 else float("-inf")


def convert(src, dst, quiet=False):
    if not os.path.isdir(src):
        raise ExportError(src, None, "SRC", "not a directory")
    if os.path.lexists(dst) and (not os.path.isdir(dst) or os.listdir(dst)):
        raise ExportError(dst, None, "OUT_EXISTS", "exists and is not an empty directory; refusing to overwrite")
    cfg_path = os.path.join(src, "config.json")
    cfg = read_json(cfg_path, "config")
    if not isinstance(cfg, dict):
        raise ExportError(cfg_path, None, "JSON", "must be a JSON object")
    exp, S = plan(cfg, cfg_path)
    tensors = load_tensors(src)
    check_inventory(exp, tensors, src)

    out = {}
    log = (lambda *a: None) if quiet else (lambda m: print(m, file=sys.stderr))
    n_fp8 = 0
    fp8_items = []
    for name in sorted(exp):
        shape, role = exp[name]
        t = tensors[name]
        if role == "bf16":
            v = as_f32(name, t)  # also refuses NaN / inf
            if t[0] == "BF16":  # copied byte for byte
                out[name] = np.frombuffer(t[2], dtype=ml_dtypes.bfloat16).reshape(shape)
            else:  # rounded to nearest even, as mimo-mkfixture's BF16 tensors are
                out[name] = v.astype(ml_dtypes.bfloat16)
        elif role == "f32":
            out[name] = as_f32(name, t)
        elif role == "fp8":
            fp8_items.append((name, None))
        elif name.endswith("q_proj.weight"):
            fp8_items.append((name.replace("q_proj", "qkv_proj"), int(role.split(":")[1])))
    for name, L in fp8_items:
        if L is None:
            w, shards = as_f32(name, tensors[name]), 1
        else:
            w, shards = fused_qkv(tensors, L, S), S
        q, scale = quantize_block128(w, shards)
        out[name] = q.view(ml_dtypes.float8_e4m3fn)
        out[name + "_scale_inv"] = scale
        n_fp8 += 1
        if not quiet:
            d = sqnr_db(w, dequantize_block128(q, scale, shards))
            log(f"  {name}  F8_E4M3 {list(q.shape)}  scale {list(scale.shape)}"
                f"{'  shards ' + str(shards) if shards > 1 else ''}  SQNR {d:.2f} dB")

    try:
        os.makedirs(dst, exist_ok=True)
        # Written under temporary names and renamed, so a failed run leaves no file that looks whole.
        tmp = os.path.join(dst, ".model.safetensors.partial")
        save_file(out, tmp, metadata={"format": "pt"})
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # the writer creates it owner-only; make it an ordinary file
        os.replace(tmp, os.path.join(dst, "model.safetensors"))
        text = json.dumps(build_config(cfg), indent=2, ensure_ascii=False) + "\n"
        tmp = os.path.join(dst, ".config.json.partial")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, os.path.join(dst, "config.json"))
        copied = []
        for fn in TOKENIZER_FILES:
            if os.path.isfile(os.path.join(src, fn)):
                shutil.copyfile(os.path.join(src, fn), os.path.join(dst, fn))
                copied.append(fn)
    except OSError as e:
        raise ExportError(e.filename or dst, None, "IO", e.strerror or str(e))
    except safetensors.SafetensorError as e:  # the writer's own I/O errors (disk full, ...)
        raise ExportError(os.path.join(dst, "model.safetensors"), None, "IO", str(e))
    if os.path.isdir(os.path.join(src, "dflash")):
        log(f"{PROG}: note: {src}/dflash not copied (the drafter pairs with the FP8 variant as it is)")
    size = os.path.getsize(os.path.join(dst, "model.safetensors"))
    print(f"{dst}: {len(out)} tensors ({n_fp8} FP8 with scale grids, qkv over {S} shard(s)), "
          f"model.safetensors {size} bytes, copied {', '.join(copied) if copied else 'no tokenizer files'}")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog=PROG, description="Convert a BF16/F32 MiMo checkpoint (hub dialect, split q/k/v) into the "
        "block-128 FP8 layout of MiMo-V2.5 (fused qkv, F8_E4M3 weights, F32 weight_scale_inv).",
        epilog="Exit status: 0 written, 2 usage, 3 bad input or I/O.")
    ap.add_argument("src", metavar="SRC_DIR", help="source checkpoint directory")
    ap.add_argument("dst", metavar="DST_DIR", help="output directory; must not exist or be empty")
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-tensor lines on stderr (default: off)")
    args = ap.parse_args(argv)  # exits 2 on a usage error
    try:
        convert(args.src, args.dst, args.quiet)
    except ExportError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
