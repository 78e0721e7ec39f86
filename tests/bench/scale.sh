#!/usr/bin/env bash
# Conversion at the real model's tensor count: time and peak RSS of a dry run and of a whole run
# of mimo-quantize, per source tensor, over tiny-preset checkpoints widened with --experts at 64
# layers (63 MoE layers x 3 projections per expert, plus 564 other tensors: 50 experts give
# 10,014 tensors, 208 give 39,876, 827 give 156,867; the real MiMo-V2.5-Pro has 159,581).
# usage: scale.sh WORK_DIR [EXPERTS...]   (default 50 208 827; VARIANT=bf16|fp8, BUILD=build)
# Sources are generated once into WORK_DIR/src-VARIANT-E and kept (827 experts: 5.3 GB BF16).
# Prints one line per size: tensors, then dry run and whole run as wall s, CPU s, peak kB,
# CPU us per tensor and peak bytes per tensor.
set -euo pipefail
work=$1; shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(50 208 827)
variant=${VARIANT:-bf16}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$top/${BUILD:-build}
mkdir -p "$work"
for e in "${sizes[@]}"; do
  src=$work/src-$variant-$e out=$work/out-$variant-$e
  [ -f "$src/config.json" ] || "$build/tools/mimo-mkfixture" --preset tiny --variant "$variant" --experts "$e" \
    --layers 64 --no-drafter --threads 2 --out "$src" -q
  n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["weight_map"]))' \
      "$src/model.safetensors.index.json")
  rm -rf "$out" "$out.mimo-partial" "$out.mimo-publish.json"
  /usr/bin/time -f "%e %U %S %M" -o "$work/dry.time" "$build/tools/mimo-quantize" "$src" "$out" --dry-run -q > /dev/null
  /usr/bin/time -f "%e %U %S %M" -o "$work/run.time" "$build/tools/mimo-quantize" "$src" "$out" -q --threads 2 > /dev/null
  for k in dry run; do
    read -r wall usr sys kb < "$work/$k.time"
    awk -v k=$k -v n="$n" -v w="$wall" -v u="$usr" -v s="$sys" -v kb="$kb" -v e="$e" 'BEGIN {
      printf "experts %4d tensors %7d %-3s wall %8.2f s cpu %8.2f s peak %8d kB  %7.1f us/tensor %6.0f B/tensor\n",
             e, n, k, w, u + s, kb, (u + s) * 1e6 / n, kb * 1024 / n }'
  done
  rm -rf "$out"
done
