#!/usr/bin/env bash
# The proof of tools/train/export_fp8.py (CPU, about a minute on 2 cores):
#
#   bash tools/train/check_fp8.sh [WORKDIR]       BUILD=build dir (default build-fp8), PY=python
#
# 1. mkfixture's tiny F32 variant (the generator's float32 values in the bf16 layout) exported
#    gives a model.safetensors byte-identical to `mimo-mkfixture --variant fp8` of the same seed
#    written as one shard, and the same config.json (keys, values, key order): the converter and
#    libquant's lq_fp8_block_quant apply the same rule to the same values.
# 2. mkfixture's tiny BF16 variant (6 shards + index) exported: every BF16/F32 tensor equals the
#    fp8 fixture's, and the FP8 codes and scales differ only as bf16 rounding of the inputs
#    explains (codes at most one step apart, scales within 2^-8 relative).
# 3. Same input, same bytes; bad inputs exit 3 naming file, item and rule; usage exits 2.
# 4. The nano model (fixtures/nano/bf16): the export, when fixtures/nano/fp8 exists, equals it
#    (SHA-256 of the uncompressed file); our tools read it (container and inventory checks); greedy
#    tokens of mimo-run equal the BF16 source's on the prompt of the model card; mimo-quantize makes
#    the MXFP4 artifact and mimo-verify passes on it (every check but the model check, whose default
#    thresholds are set for the random tiny fixture; its figures are printed); mimo-verify's model
#    check of the FP8 variant against the BF16 source on Python code written for this check, with
#    thresholds pinned below.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${BUILD:-$top/build-fp8}
PY=${PY:-$top/.venv/bin/python}
W=${1:-$(mktemp -d /tmp/check_fp8.XXXXXX)}
mkdir -p "$W"
X=("$PY" "$top/tools/train/export_fp8.py")
for t in mimo-mkfixture mimo-run mimo-quantize mimo-verify; do
  [ -x "$B/tools/$t" ] || { echo "check_fp8: $B/tools/$t missing (source scripts/env.sh; mimo_setup build-fp8)" >&2; exit 2; }
done
fail() { echo "check_fp8: FAIL: $*" >&2; exit 1; }
echo "check_fp8: work dir $W"

# ---- 1. F32 variant -> byte-identical to mkfixture's fp8 ----
rm -rf "$W/t32" "$W/t8one" "$W/t16" "$W/t8" "$W/x32" "$W/x16" "$W/x16b"
"$B/tools/mimo-mkfixture" --preset tiny --variant f32 --out "$W/t32" --no-drafter -q >/dev/null
"$B/tools/mimo-mkfixture" --preset tiny --variant fp8 --out "$W/t8one" --no-drafter -q --max-shard-size 1000000000 >/dev/null
"${X[@]}" "$W/t32" "$W/x32" -q >/dev/null
cmp "$W/t8one/model.safetensors" "$W/x32/model.safetensors" || fail "tiny f32 export differs from mkfixture fp8"
"$PY" - "$W/t8one/config.json" "$W/x32/config.json" <<'EOF' || fail "config.json differs from mkfixture's fp8 config"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a == b and list(a) == list(b), "config differs"
EOF
echo "1. tiny f32 -> fp8: model.safetensors identical to mkfixture --variant fp8 ($(stat -c %s "$W/x32/model.safetensors") bytes, sha256 $(sha256sum <"$W/x32/model.safetensors" | cut -c1-16)...); config.json equal, same key order"

# ---- 2. BF16 variant (sharded) -> differs only by the bf16 rounding of the inputs ----
"$B/tools/mimo-mkfixture" --preset tiny --variant bf16 --out "$W/t16" --no-drafter -q >/dev/null
"$B/tools/mimo-mkfixture" --preset tiny --variant fp8 --out "$W/t8" --no-drafter -q >/dev/null
"${X[@]}" "$W/t16" "$W/x16" -q >/dev/null
"$PY" - "$W/t8" "$W/x16" <<'EOF' || fail "tiny bf16 export vs mkfixture fp8"
import glob, sys
import ml_dtypes, numpy as np, safetensors
def load(d):
    out = {}
    for f in sorted(glob.glob(d + "/*.safetensors")):
        for n, t in safetensors.deserialize(open(f, "rb").read()):
            out[n] = (t["dtype"], tuple(t["shape"]), bytes(t["data"]))
    return out
ref, got = load(sys.argv[1]), load(sys.argv[2])
assert set(ref) == set(got), sorted(set(ref) ^ set(got))[:5]
n_codes = d_codes = n_sc = d_sc = 0
max_rel = 0.0
for n in sorted(ref):
    assert ref[n][:2] == got[n][:2], (n, ref[n][:2], got[n][:2])
    dt = ref[n][0]
    if dt == "F8_E4M3":
        a, b = (np.frombuffer(x[2], np.uint8).astype(int) for x in (ref[n], got[n]))
        n_codes += a.size; d_codes += int((a != b).sum())
        assert np.abs(a - b).max() <= 1 and not (((a ^ b) & 0x80) != 0).any(), n  # one step, same sign
    elif n.endswith("_scale_inv"):
        a, b = (np.frombuffer(x[2], np.float32).astype(np.float64) for x in (ref[n], got[n]))
        n_sc += a.size; d_sc += int((a != b).sum())
        max_rel = max(max_rel, float((np.abs(a - b) / a).max()))
    else:
        assert ref[n][2] == got[n][2], n  # BF16 and F32 tensors: identical bytes
assert max_rel <= 2.0 ** -8 * 1.0001, max_rel  # bf16 keeps 8 significant bits: amax moves by <= 2^-8
print(f"2. tiny bf16 -> fp8 vs mkfixture fp8 (quantized from the f32 values before bf16 rounding): BF16/F32 "
      f"tensors identical; FP8 codes differing {d_codes} of {n_codes} ({100 * d_codes / n_codes:.2f}%), all "
      f"by one step; scale elements differing {d_sc} of {n_sc}, max relative {max_rel:.3e} (bound 2^-8 = 3.906e-03)")
EOF

# ---- 3. determinism and errors ----
"${X[@]}" "$W/t16" "$W/x16b" -q >/dev/null
cmp "$W/x16/model.safetensors" "$W/x16b/model.safetensors" && cmp "$W/x16/config.json" "$W/x16b/config.json" \
  || fail "two runs differ"
expect_err() { # rule, src, [dst]
  local rule=$1 src=$2 dst=${3:-$W/err.out} rc=0
  rm -rf "$W/err.out"
  "${X[@]}" "$src" "$dst" -q 2>"$W/err.txt" >/dev/null || rc=$?
  [ "$rc" = 3 ] && grep -q ": $rule: " "$W/err.txt" || fail "expected exit 3 with rule $rule, got $rc: $(cat "$W/err.txt")"
  [ -e "$W/err.out" ] && [ "$dst" = "$W/err.out" ] && fail "$rule: output written"
  echo "   $rule: $(cat "$W/err.txt")"
}
mkbad() { # name, python editing config (c) and tensors (t: name -> numpy array)
  rm -rf "$W/bad_$1"; mkdir -p "$W/bad_$1"
  "$PY" - "$W/t16" "$W/bad_$1" "$2" <<'EOF'
import glob, json, os, sys
import ml_dtypes, numpy as np, safetensors
from safetensors.numpy import save_file
src, dst, code = sys.argv[1:4]
c = json.load(open(os.path.join(src, "config.json")))
t = {}
for f in sorted(glob.glob(src + "/*.safetensors")):
    for n, x in safetensors.deserialize(open(f, "rb").read()):
        dt = {"BF16": ml_dtypes.bfloat16, "F32": np.float32}[x["dtype"]]
        t[n] = np.frombuffer(bytes(x["data"]), dt).reshape(x["shape"]).copy()
exec(code)
json.dump(c, open(os.path.join(dst, "config.json"), "w"))
save_file(t, os.path.join(dst, "model.safetensors"))
EOF
}
echo "3. two runs identical; bad input:"
expect_err CFG_MODEL_TYPE "$W/x16"
expect_err OUT_EXISTS "$W/t16" "$W/x16"
mkbad missing 'del t["model.layers.4.mlp.experts.3.up_proj.weight"]'; expect_err TENSOR_MISSING "$W/bad_missing"
mkbad extra 't["model.mtp.0.proj.weight"] = t["model.norm.weight"]'; expect_err TENSOR_UNEXPECTED "$W/bad_extra"
mkbad shape 't["model.layers.1.self_attn.k_proj.weight"] = t["model.layers.1.self_attn.k_proj.weight"][:-1]'
expect_err TENSOR_SHAPE "$W/bad_shape"
mkbad nan 't["model.layers.2.mlp.experts.0.down_proj.weight"][3, 5] = np.nan'; expect_err TENSOR_NONFINITE "$W/bad_nan"
mkbad f16 't["model.layers.0.mlp.up_proj.weight"] = t["model.layers.0.mlp.up_proj.weight"].astype(np.float16)'
expect_err TENSOR_DTYPE "$W/bad_f16"
mkbad quant 'c["quantization_config"] = {"quant_method": "fp8"}'; expect_err CFG_QUANTIZED "$W/bad_quant"
mkbad kv 'c["num_key_value_heads"] = 3; c["num_attention_heads"] = 9'; expect_err QKV_SHARDS "$W/bad_kv"
rc=0; "${X[@]}" >/dev/null 2>&1 || rc=$?; [ "$rc" = 2 ] || fail "usage error exit $rc, expected 2"
echo "   no arguments: exit 2"

# ---- 4. the nano model ----
N=$top/fixtures/nano
rm -rf "$W/bf16" "$W/fp8" "$W/mx" "$W/fp8d"
mkdir -p "$W/bf16/dflash"
zstd -q -d -o "$W/bf16/model.safetensors" "$N/bf16/model.safetensors.zst"
cp "$N/bf16/config.json" "$N/bf16/tokenizer.json" "$W/bf16/"
cp "$N/bf16/dflash/config.json" "$N/bf16/dflash/mask_embedding.pt" "$N/bf16/dflash/model.safetensors.index.json" "$W/bf16/dflash/"
zstd -q -d -o "$W/bf16/dflash/dflash_draft_model.safetensors" "$N/bf16/dflash/dflash_draft_model.safetensors.zst"
"${X[@]}" "$W/bf16" "$W/fp8" -q >/dev/null
sha=$(sha256sum <"$W/fp8/model.safetensors" | cut -d' ' -f1)
echo "4. nano fp8: model.safetensors $(stat -c %s "$W/fp8/model.safetensors") bytes, sha256 $sha"
if [ -d "$N/fp8" ]; then
  [ "$(zstd -q -d -c "$N/fp8/model.safetensors.zst" | sha256sum | cut -d' ' -f1)" = "$sha" ] \
    || fail "fixtures/nano/fp8/model.safetensors.zst is not this export"
  cmp "$N/fp8/config.json" "$W/fp8/config.json" && cmp "$N/fp8/tokenizer.json" "$W/fp8/tokenizer.json" \
    || fail "fixtures/nano/fp8 config.json / tokenizer.json differ from this export"
  echo "   fixtures/nano/fp8 equals this export (model, config.json, tokenizer.json)"
fi
"$B/tools/mimo-verify" "$W/fp8" --only container,inventory | sed 's/^/   /'

P=$'import os\ndef read_config(path):'
"$B/tools/mimo-run" "$W/bf16" --prompt "$P" --max-tokens 32 --no-dflash --format json --threads 2 >"$W/run_bf16.json" 2>/dev/null
"$B/tools/mimo-run" "$W/fp8" --prompt "$P" --max-tokens 32 --no-dflash --format json --threads 2 >"$W/run_fp8.json" 2>/dev/null
# Greedy text is printed, not asserted equal: one near tie decides it. On the quantization-aware
# fine-tuned model the two agree on the first 10 tokens, then the BF16 model's two best logits at
# token 11 are 7.9866 and 7.9711 (transformers, fp32: a gap of 0.016) and FP8 takes the second. The
# teacher-forced model check below, with pinned thresholds, is the assertion.
"$PY" - "$W/run_bf16.json" "$W/run_fp8.json" <<'EOF' || fail "mimo-run output unreadable"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
n = next((i for i, (x, y) in enumerate(zip(a["tokens"], b["tokens"])) if x != y), len(a["tokens"]))
print(f"   mimo-run greedy, 32 tokens: FP8 equals BF16 on the first {n}; FP8 text {b['text']!r}")
EOF

"$B/tools/mimo-quantize" "$W/fp8" "$W/mx" --threads 2 2>/dev/null | sed 's/^/   /'
"$B/tools/mimo-verify" "$W/mx" --source "$W/fp8" --skip model --threads 2 | sed 's/^/   /'
"$PY" - "$W/mx_model_policy.json" <<'EOF'
import json, sys  # the default policy's model section, thresholds left out: figures only
json.dump({"schema_version": 1, "required": ["model"], "thresholds": {},
           "model": {"prompts": 4, "prompt_length": 32, "seed": 1, "continuation_length": 32, "sample_seed": 1,
                     "dflash_tokens": 0}}, open(sys.argv[1], "w"))
EOF
"$B/tools/mimo-verify" "$W/mx" --source "$W/fp8" --only model --policy "$W/mx_model_policy.json" --threads 2 2>/dev/null \
  | head -1 | sed 's/^/   MXFP4 vs FP8, default model section: /'

# FP8 variant vs BF16 source on Python code (written for this check, not from the corpus).
cat >"$W/code.py" <<'EOF'
import json
import os
from dataclasses import dataclass, field


@dataclass
class Settings:
    """Options read from a JSON file, with defaults for every missing key."""
    name: str = "default"
    retries: int = 3
    timeout: float = 10.0
    paths: list = field(default_factory=list)


def load_settings(path):
    if not os.path.exists(path):
        return Settings()
    with open(path, "r", encoding="utf-8") as f:
        data = json.load(f)
    known = {k: v for k, v in data.items() if k in Settings.__dataclass_fields__}
    return Settings(**known)


def count_words(lines):
    counts = {}
    for line in lines:
        for word in line.strip().lower().split():
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


class RingBuffer:
    def __init__(self, capacity):
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.items = [None] * capacity
        self.start = 0
        self.size = 0

    def push(self, item):
        end = (self.start + self.size) % self.capacity
        self.items[end] = item
        if self.size < self.capacity:
            self.size += 1
        else:
            self.start = (self.start + 1) % self.capacity

    def __iter__(self):
        for i in range(self.size):
            yield self.items[(self.start + i) % self.capacity]


if __name__ == "__main__":
    settings = load_settings(os.path.expanduser("~/.app.json"))
    print(settings.name, settings.retries)
EOF
# Thresholds from one healthy measurement (top-1 0.979, mean KL 0.00235, max KL 0.069, perplexity
# ratio 0.998, lowest hidden-state cosine 0.99904, DFlash tau ratio 0.938) with docs/cli.md's margins
# (2x the miss rate, 2.5x KL and 1 - cosine, 10x the perplexity ratio's distance from 1); on damaged
# copies of the variant the smallest damage measured (every FP8 code of layer 1's experts one step up)
# gave top-1 0.943, mean KL 0.0098, cosine 0.99555 and fails three of them; one layer's scales doubled,
# global-layer k rows rotated, one expert's up_proj replaced: top-1 0.22 / 0.78 / 0.90, ratio 36 /
# 1.46 / 1.026. The DFlash bound is looser than the default 0.9: the drafter was trained on the BF16
# target's taps, so the FP8 target accepts a little less (0.938). Those figures are the first nano
# model's; the quantization-aware fine-tuned one (fixtures/nano/MODEL_CARD.md) gives top-1 0.9922,
# mean KL 0.00103, max KL 0.0118, ratio 0.9995, lowest cosine 0.99956, tau 3.877 / 3.847.
"$PY" - "$W/code.py" "$W/bf16/tokenizer.json" "$W/fp8_policy.json" <<'EOF'
import json, sys
from tokenizers import Tokenizer
text = open(sys.argv[1]).read()
ids = Tokenizer.from_file(sys.argv[2]).encode(text).ids
json.dump({"schema_version": 1, "required": ["model"],
           "thresholds": {"min_top1_agreement": 0.95, "max_mean_kl": 0.006, "max_kl": 0.2, "max_ppl_ratio": 1.02,
                          "min_layer_hidden_cosine": 0.9975, "min_dflash_tau_ratio": 0.85},
           "model": {"prompt_ids": [ids[o:o + 48] for o in range(0, 8 * 48, 48)], "text": text,
                     "dflash_tokens": 64}}, open(sys.argv[3], "w"))
EOF
mkdir -p "$W/fp8d" && cp "$W/fp8/"* "$W/fp8d/" && cp -r "$W/bf16/dflash" "$W/fp8d/dflash"
"$B/tools/mimo-verify" "$W/fp8d" --source "$W/bf16" --only model --policy "$W/fp8_policy.json" --threads 2 \
  --report "$W/fp8_vs_bf16.json" | sed 's/^/   FP8 vs BF16: /' || fail "model check FP8 vs BF16"
"$PY" - "$W/fp8_vs_bf16.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["model"]
print("   hidden-state cosine:", ", ".join(f"{h['state']} {h['cosine']:.6f}" for h in m["hidden_cosine"]))
d = m["dflash"]
print(f"   DFlash (bf16/dflash drafter on both): tau FP8 {d['artifact']['tau']:.3f} ({d['artifact']['steps']} steps) / "
      f"BF16 {d['source']['tau']:.3f} ({d['source']['steps']} steps)")
EOF
echo "check_fp8: all checks passed"
