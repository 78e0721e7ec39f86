"""transformers writes the transformers dialect; our parser reads it as the hub file's twin.

usage: interop_transformers.py MKFIXTURE CONFIG_DUMP

Needs transformers with the MiMo-V2-Flash port (the GPU host has it); exits 77 (skip) without.
1. The tiny BF16 fixture's hub config.json goes through the port's converter steps
   (convert_mimo_v2_flash_weights_to_hf.convert_config; its module when installed, else the
   same steps restated below, since pip packages leave the script out) and transformers'
   MiMoV2FlashConfig validates it and writes the file (save_pretrained).
   config_dump prints our parse of both files; every line must be equal except the dialect
   (1 = hub, 2 = transformers) and bos (the port writes its class default 1, the hub file
   has none, so bos is not dumped).
2. MiMoV2FlashConfig() with no arguments (the port's V2-Flash defaults) saved and parsed must
   give V2-Flash's geometry from reference/mimo_arch.md 2.1-2.2: 48 layers, globals
   {0,5,11,...,47}, 64 heads, 4 global and 8 SWA KV heads (the port's 2x rule), 192/128 dims,
   64 RoPE dims, theta 5e6 / 1e4, window 128, 256 experts top-8 of 2048.
"""
import shutil
import subprocess
import sys
import tempfile

try:
    from transformers import MiMoV2FlashConfig
except Exception as exc:  # noqa: BLE001 - any import failure means "not available here"
    print(f"skip: transformers with MiMoV2FlashConfig not importable ({exc})")
    sys.exit(77)

import json


def hub_to_kwargs_config(hub):
    """The steps of the port's convert_mimo_v2_flash_weights_to_hf.convert_config (which pip
    packages do not ship): drop the hub-only keys, rename layernorm_epsilon, turn the 0/1 lists
    into layer_types / mlp_layer_types, null routed_scaling_factor -> 1.0, and move the RoPE
    keys into rope_parameters per layer type. transformers then validates and writes the file."""
    drop = {"attention_chunk_size", "sliding_window_size", "n_shared_experts", "scoring_func",
            "topk_method", "swa_num_attention_heads", "swa_num_key_value_heads", "swa_qk_head_dim",
            "swa_head_dim", "swa_v_head_dim", "add_swa_attention_sink_bias",
            "add_full_attention_sink_bias", "auto_map"}
    kw = {k: v for k, v in hub.items() if k not in drop}
    if "layernorm_epsilon" in kw:
        kw["rms_norm_eps"] = kw.pop("layernorm_epsilon")
    pattern = kw.pop("hybrid_layer_pattern", None)
    if pattern is not None:
        kw["layer_types"] = ["sliding_attention" if p == 1 else "full_attention" for p in pattern]
    freq = kw.pop("moe_layer_freq", None)
    if freq is not None:
        kw["mlp_layer_types"] = ["sparse" if f == 1 else "dense" for f in freq]
    if kw.get("routed_scaling_factor") is None:
        kw["routed_scaling_factor"] = 1.0
    prf = kw.pop("partial_rotary_factor", 0.334)
    full = {"rope_type": "default", "rope_theta": kw.pop("rope_theta", 5_000_000.0),
            "partial_rotary_factor": prf}
    swa = {"rope_type": "default", "rope_theta": kw.pop("swa_rope_theta", 10_000.0),
           "partial_rotary_factor": prf}
    if kw.pop("rope_scaling", None) is not None:
        raise SystemExit("FAIL: fixture has rope_scaling")
    kw["rope_parameters"] = {"full_attention": full, "sliding_attention": swa}
    return MiMoV2FlashConfig(**kw)


def dump(tool, path):
    r = subprocess.run([tool, path], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"FAIL: config_dump {path}: {r.stderr.strip()}")
    return {k: v for k, _, v in (line.partition(" ") for line in r.stdout.splitlines())}


def main():
    mkfixture, tool = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="mimo-tr-")
    failures = 0
    try:
        subprocess.run([mkfixture, "--preset", "tiny", "--variant", "bf16", "--out", f"{work}/hub",
                        "--no-drafter", "-q"], check=True, stdout=subprocess.DEVNULL)
        with open(f"{work}/hub/config.json") as f:
            hub = json.load(f)
        try:
            from transformers.models.mimo_v2_flash.convert_mimo_v2_flash_weights_to_hf import \
                convert_config
        except ImportError:
            convert_config = hub_to_kwargs_config  # the pip package leaves the script out
        convert_config(hub).save_pretrained(f"{work}/tr")
        with open(f"{work}/tr/config.json") as f:
            written = json.load(f)
        print("transformers wrote keys:", ", ".join(sorted(written)))
        a, b = dump(tool, f"{work}/hub/config.json"), dump(tool, f"{work}/tr/config.json")
        if a.pop("dialect") != "1" or b.pop("dialect") != "2":
            print("FAIL: dialect bits")
            failures += 1
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                print(f"FAIL: {k}: hub {a.get(k)!r} vs transformers {b.get(k)!r}")
                failures += 1
        print(f"twin: {len(a)} fields compared")

        MiMoV2FlashConfig().save_pretrained(f"{work}/defaults")
        d = dump(tool, f"{work}/defaults/config.json")
        globals_ = {0, 5, 11, 17, 23, 29, 35, 41, 47}
        want = {
            "num_hidden_layers": "48",
            "is_swa": " ".join("0" if i in globals_ else "1" for i in range(48)),
            "is_moe": " ".join("0" if i == 0 else "1" for i in range(48)),
            "heads": "64 4 192 128",
            "swa_heads": "64 8 192 128",
            "rope": "0.33400000000000002 0.33400000000000002 64 64 5000000 10000",
            "sliding_window": "128",
            "sinks": "1 0",
            "attention_value_scale": "0.70699999999999996",
            "mlp": "16384 2048 256 8 1 1 1 1 sigmoid",
            "rms_norm_eps": "1.0000000000000001e-05",
            "fused_qkv": "0",
            "qkv_shards": "4",
        }
        for k, v in want.items():
            if d.get(k) != v:
                print(f"FAIL: defaults {k}: got {d.get(k)!r}, want {v!r}")
                failures += 1
        print(f"defaults: {len(want)} fields checked")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("interop_transformers:", "FAIL" if failures else "ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
