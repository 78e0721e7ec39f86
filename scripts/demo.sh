#!/usr/bin/env bash
# The main job end to end on the embedded default: build, generate the tiny fixtures (BF16 and
# FP8, with the DFlash drafter), quantize the FP8 fixture's routed experts to MXFP4 with the
# library and print the per-tensor error table. Output goes to out/ (regenerated each run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/bootstrap.sh"
source "$here/env.sh"
cd "$top"
mimo_setup build
rm -rf out/fixtures && mkdir -p out/fixtures
build/tools/mimo-mkfixture --preset tiny --variant bf16 --out out/fixtures/tiny-bf16 -q
build/tools/mimo-mkfixture --preset tiny --variant fp8 --out out/fixtures/tiny-fp8 -q
build/tools/mimo-mxreport out/fixtures/tiny-fp8 --mode "${MODE:-mse}"
