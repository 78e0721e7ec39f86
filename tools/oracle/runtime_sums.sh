#!/usr/bin/env bash
# Fingerprints of everything the CPU oracle produces, so two builds can be compared byte for byte
# (a refactor of the runtime must not move a single number).
#   usage: tools/oracle/runtime_sums.sh TOOLS_DIR RT_DUMP FIXTURES TEXT_LIST > SUMS
# TOOLS_DIR holds mimo-run and mimo-eval; RT_DUMP is tests/runtime/rt_dump of the same build (or a
# program with its output layout); FIXTURES holds tiny-bf16, tiny-fp8, tiny-mx (mimo-quantize of
# tiny-fp8), nano-bf16 (fixtures/nano/bf16 decompressed) and nano-mx (its mimo-quantize artifact);
# TEXT_LIST is a list of text files for mimo-eval. Prints one line per output: the full logits,
# hidden states, tap features, drafter context features and draft logits of rt_dump at 1 and 2
# threads; mimo-run --format json for plain, greedy DFlash and seeded sampling runs at 1 and 2
# threads; mimo-eval --format json on nano at 1 and 2 threads. Timing fields (*_s, *_per_s,
# ratio, seconds) and the thread count are dropped from the JSON before hashing.
set -u
T=$1 D=$2 FX=$3 LIST=$4
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
strip() {
  python3 -c '
import json, sys
def s(x):
    if isinstance(x, dict):
        return {k: s(v) for k, v in x.items()
                if not (k.endswith("_s") or k in ("threads", "model", "ratio", "seconds"))}
    if isinstance(x, list):
        return [s(v) for v in x]
    return x
print(json.dumps(s(json.load(sys.stdin)), sort_keys=True))'
}
for m in tiny-bf16 tiny-fp8 tiny-mx nano-bf16 nano-mx; do
  for t in 1 2; do
    mkdir -p "$W/$m.$t"
    "$D" "$FX/$m" "$W/$m.$t" $t || echo "dump failed $m $t"
    for f in "$W/$m.$t"/*; do echo "dump $m t$t $(basename "$f") $(sha256sum < "$f" | cut -c1-16)"; done
  done
done
for m in tiny-mx nano-mx; do
  for t in 1 2; do
    for mode in "--no-dflash" "--dflash" "--dflash --temperature 0.8 --seed 7" "--no-dflash --temperature 0.8 --seed 7" \
                "--dflash --temperature 0.8 --top-k 40 --top-p 0.9 --seed 3"; do
      r=$("$T/mimo-run" "$FX/$m" --prompt-ids 11,22,33,44,55,66,77,88,99,100,101,102 --max-tokens 40 --ignore-eos \
          --format json --threads $t $mode 2>/dev/null | strip | sha256sum | cut -c1-16)
      echo "run $m t$t $mode $r"
    done
  done
done
for t in 1 2; do
  r=$("$T/mimo-eval" "$FX/nano-mx" --source "$FX/nano-bf16" --set code="$LIST" --ppl-tokens 2048 --prompts 4 \
      --gen-tokens 48 --threads $t --format json -q 2>/dev/null | strip | sha256sum | cut -c1-16)
  echo "eval nano t$t $r"
done
