#!/usr/bin/env bash
# The main job end to end on the embedded default: build; generate the tiny fixtures (BF16 and
# FP8, with the DFlash drafter and the fixture tokenizer); print the per-tensor MXFP4 error table
# of the FP8 fixture's routed experts; convert it to the MXFP4-expert release artifact; verify the
# artifact against its source; generate text from the artifact with DFlash on the CPU runtime.
# Output goes to out/ (regenerated each run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/bootstrap.sh"
source "$here/env.sh"
cd "$top"
mimo_setup build
rm -rf out/fixtures out/artifact && mkdir -p out/fixtures
tok=fixtures/tokenizer/tokenizer.json
build/tools/mimo-mkfixture --preset tiny --variant bf16 --tokenizer "$tok" --out out/fixtures/tiny-bf16 -q
build/tools/mimo-mkfixture --preset tiny --variant fp8 --tokenizer "$tok" --out out/fixtures/tiny-fp8 -q
build/tools/mimo-mxreport out/fixtures/tiny-fp8 --mode "${MODE:-mse}"
echo
build/tools/mimo-quantize out/fixtures/tiny-fp8 out/artifact --scale-mode "${MODE:-mse}" -q
build/tools/mimo-verify out/artifact --source out/fixtures/tiny-fp8
echo
# The fixture's weights are random, so the text is not meaningful: this shows the path works.
build/tools/mimo-run out/artifact --prompt "${PROMPT:-The old lighthouse keeper opened the door and}" \
  --max-tokens "${MAX_TOKENS:-32}" --dflash
