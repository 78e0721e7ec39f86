#!/usr/bin/env bash
# The main job end to end, on the CPU. Default (MODEL=nano): the trained nano MiMo model
# (fixtures/nano/MODEL_CARD.md) and its DFlash drafter:
#   1. build;
#   2. decompress fixtures/nano/bf16 (dflash/ included) into out/nano-bf16 and check every file
#      against fixtures/nano/SHA256SUMS (scripts/nano-sums.sh regenerates that list);
#   3. print the per-tensor MXFP4 error table of its routed experts (mimo-mxreport);
#   4. convert it to the MXFP4-expert release artifact out/nano-mxfp4 (mimo-quantize);
#   5. verify the artifact against its source under the nano release policy (mimo-verify with
#      policy/nano.json: integrity, accuracy and the end-to-end model check);
#   6. generate code from a Python prompt with DFlash (mimo-run): the text on stdout, then the
#      decode rate (tokens/s) and the acceptance length tau on stderr.
# MODEL=tiny runs the same path on the random-weight tiny fixture instead (out/fixtures,
# out/artifact; the text is noise). Knobs: MODE=mse|floor|rceil|even (MXFP4 scale rule),
# PROMPT=..., MAX_TOKENS=N, BUILD=DIR (the build directory, default build). Output directories are
# regenerated on each run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
model=${MODEL:-nano}
mode=${MODE:-mse}
case "$model" in
  nano | tiny) ;;
  *) echo "demo: MODEL must be nano or tiny, not '$model'" >&2; exit 2 ;;
esac
bash "$here/bootstrap.sh"
source "$here/env.sh"
cd "$top"
build=${BUILD:-build}
mimo_setup "$build"
bin=$build/tools

if [ "$model" = tiny ]; then
  rm -rf out/fixtures out/artifact && mkdir -p out/fixtures
  tok=fixtures/tokenizer/tokenizer.json
  $bin/mimo-mkfixture --preset tiny --variant bf16 --tokenizer "$tok" --out out/fixtures/tiny-bf16 -q
  $bin/mimo-mkfixture --preset tiny --variant fp8 --tokenizer "$tok" --out out/fixtures/tiny-fp8 -q
  $bin/mimo-mxreport out/fixtures/tiny-fp8 --mode "$mode"
  echo
  $bin/mimo-quantize out/fixtures/tiny-fp8 out/artifact --scale-mode "$mode" -q
  $bin/mimo-verify out/artifact --source out/fixtures/tiny-fp8
  echo
  # The fixture's weights are random, so the text is not meaningful: this shows the path works.
  $bin/mimo-run out/artifact --prompt "${PROMPT:-The old lighthouse keeper opened the door and}" \
    --max-tokens "${MAX_TOKENS:-32}" --dflash
  exit 0
fi

nano=fixtures/nano
src=out/nano-bf16
art=out/nano-mxfp4
command -v zstd >/dev/null || { echo "demo: the zstd command is missing (scripts/bootstrap.sh installs it)" >&2; exit 3; }

echo "== decompress $nano/bf16 -> $src"
rm -rf "$src" "$art" && mkdir -p "$src"
(cd "$nano/bf16" && find . -type f) | LC_ALL=C sort | while IFS= read -r f; do
  f=${f#./}
  mkdir -p "$src/$(dirname "$f")"
  case "$f" in
    *.zst) zstd -dq "$nano/bf16/$f" -o "$src/${f%.zst}" ;;
    *) cp "$nano/bf16/$f" "$src/$f" ;;
  esac
done
# Every file of the tree must be listed in SHA256SUMS (lines "HASH  bf16/PATH") with its hash.
listed=$(sed -n 's|^[0-9a-f]\{64\}  bf16/||p' "$nano/SHA256SUMS" | LC_ALL=C sort)
present=$(cd "$src" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
if [ "$listed" != "$present" ]; then
  echo "demo: $nano/SHA256SUMS does not list exactly the files of $nano/bf16 (run scripts/nano-sums.sh):" >&2
  diff <(echo "$listed") <(echo "$present") >&2 || true
  exit 3
fi
(cd "$src" && sed -n 's|^\([0-9a-f]\{64\}\)  bf16/|\1  |p' "$top/$nano/SHA256SUMS" | sha256sum -c --quiet) || {
  echo "demo: $src differs from $nano/SHA256SUMS (a damaged fixture, or a replaced one: run scripts/nano-sums.sh)" >&2
  exit 3
}
echo "$(echo "$present" | wc -l) files, SHA-256 as listed in $nano/SHA256SUMS"
echo

echo "== MXFP4 error table of the routed experts ($mode)"
$bin/mimo-mxreport "$src" --mode "$mode"
echo

echo "== convert to $art"
$bin/mimo-quantize "$src" "$art" --scale-mode "$mode" -q
echo

echo "== verify $art against $src (policy/nano.json)"
$bin/mimo-verify "$art" --source "$src" --policy policy/nano.json
echo

# A function signature, its docstring and its first line: the model is trained on Python.
prompt=${PROMPT:-$(printf 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:')}
echo "== generate with DFlash (prompt below, then the continuation; rates and tau at the end)"
printf '%s' "$prompt"
# mimo-run prints the decode rate ("decode: ... tokens/s") and the acceptance length ("dflash:
# block B, tau T") on stderr after the text.
$bin/mimo-run "$art" --prompt "$prompt" --max-tokens "${MAX_TOKENS:-64}" --dflash
