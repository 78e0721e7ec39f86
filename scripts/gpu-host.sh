#!/usr/bin/env bash
# Builds and runs the GPU work on the GPU test host (../shared/GPU_HOST.md): Ubuntu with CUDA, meson,
# ninja and torch, but no cJSON or PCRE2 headers. Those come from Debian's .deb files placed in .deps/
# (apt-get download libcjson1 libcjson-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0
# libpcre2-posix3), unpacked into a private prefix.
#
# Usage: bash scripts/gpu-host.sh LOGDIR [STAGE...]   (default stages: test bench)
#   test      the gpu suite (every kernel against the CPU per-op references, the CUDA backend
#             against the CPU backend on tiny and nano), MIMO_REQUIRE_GPU=1: no test may skip
#   sanitize  compute-sanitizer memcheck, racecheck and initcheck on the kernel tests
#   medium    makes the medium fixtures (FP8 source with its drafter, MXFP4 artifact) and compares
#             the CUDA backend with the CPU on them
#   bench     decode and prefill tokens/s of nano and medium (if made: run medium first), plain
#             and DFlash, and the MXFP4 decode kernel against a device copy
# Ends with a short table naming the card. Writes build-gpu/ and LOGDIR/*.log.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
log=${1:-$top/build-gpu-logs}
shift || true
stages=${*:-test bench}
mkdir -p "$log"
cd "$top"
if ! pkg-config --exists libcjson libpcre2-8 2>/dev/null; then
  pre=${TMPDIR:-/tmp}/mimo-deps
  for f in .deps/*.deb; do dpkg -x "$f" "$pre"; done
  pc="$pre/usr/lib/x86_64-linux-gnu/pkgconfig"
  for f in "$pc"/libcjson.pc "$pc"/libpcre2-*.pc; do [ -f "$f" ] && sed -i "s#=/usr#=$pre/usr#" "$f"; done
  export PKG_CONFIG_PATH="$pc" LD_LIBRARY_PATH="$pre/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export PATH="$PATH:/usr/local/cuda/bin" MIMO_REQUIRE_GPU=1
[ -f build-gpu/build.ninja ] || meson setup build-gpu -Dpython=python3 >"$log/setup.log" 2>&1 || { cat "$log/setup.log"; exit 1; }
meson compile -C build-gpu >"$log/compile.log" 2>&1 || { tail -50 "$log/compile.log"; exit 1; }
card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
echo "$card" | tee "$log/gpu.txt"
table=()
B=build-gpu
T=$B/tools
work=${MIMO_GPU_WORK:-${TMPDIR:-/tmp}/mimo-gpu}
mkdir -p "$work"

for s in $stages; do
  case $s in
  test)
    meson test -C $B --suite gpu --print-errorlogs --num-processes 4 2>&1 | tee "$log/gpu-tests.log" | tail -25
    table+=("gpu suite: $(grep -E '^(Ok|Fail|Skipped|Timeout):' "$log/gpu-tests.log" | tr -s ' ' | tr '\n' ' ')")
    ;;
  sanitize)
    for t in linear attention ops mxfp4_dequant; do
      for tool in memcheck racecheck initcheck; do
        timeout 300 compute-sanitizer --tool $tool --error-exitcode 9 $B/tests/gpu/test_${t}_gpu >"$log/san-$t-$tool.log" 2>&1
        rc=$?
        table+=("compute-sanitizer $tool $t: rc $rc, $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$log/san-$t-$tool.log" | tail -1)")
      done
    done
    ;;
  medium)
    if [ ! -f "$work/med-fp8/config.json" ]; then
      $T/mimo-mkfixture --preset medium --variant fp8 --threads 16 -q --out "$work/med-fp8" >"$log/med-make.log" 2>&1
      $T/mimo-quantize "$work/med-fp8" "$work/med-mx" --threads 16 -q >>"$log/med-make.log" 2>&1
    fi
    for m in med-fp8 med-mx; do
      timeout 600 $B/tests/gpu/cmp_backends "$work/$m" --threads 16 --dev cuda --random 24 >"$log/cmp-$m.log" 2>&1
      table+=("cmp $m (rc $?): $(tr '\n' ' ' <"$log/cmp-$m.log" | cut -c1-400)")
    done
    ;;
  bench)
    $B/tests/gpu/test_mxfp4_dequant_gpu --bench >"$log/bench-dequant.log" 2>&1
    table+=("mxfp4 decode: $(tail -1 "$log/bench-dequant.log")")
    if [ ! -f "$work/nano-mx/config.json" ]; then
      n=fixtures/nano/bf16
      mkdir -p "$work/nano-bf16/dflash"
      cp $n/config.json $n/tokenizer.json "$work/nano-bf16/"
      cp $n/dflash/config.json $n/dflash/mask_embedding.pt $n/dflash/model.safetensors.index.json "$work/nano-bf16/dflash/"
      $B/tests/gpu/unzst $n model.safetensors.zst "$work/nano-bf16/model.safetensors"
      $B/tests/gpu/unzst $n/dflash dflash_draft_model.safetensors.zst "$work/nano-bf16/dflash/dflash_draft_model.safetensors"
      $T/mimo-quantize "$work/nano-bf16" "$work/nano-mx" -q >"$log/nano-make.log" 2>&1
    fi
    ids=$(seq -s, 11 522) # a 512-token prompt, so the prefill rate is that of a real batch
    for m in "$work/nano-bf16" "$work/nano-mx" "$work/med-fp8" "$work/med-mx"; do
      [ -f "$m/config.json" ] || continue
      for mode in --no-dflash --dflash; do
        $T/mimo-run "$m" --device cuda --prompt-ids "$ids" --max-tokens 128 --ignore-eos $mode \
          --format json >"$log/run-$(basename "$m")$mode.json" 2>"$log/run-$(basename "$m")$mode.err"
        table+=("run $(basename "$m") $mode (rc $?): $(cut -c1-600 "$log/run-$(basename "$m")$mode.json" | tr -d '\n')")
      done
    done
    ;;
  *) echo "unknown stage $s"; exit 2 ;;
  esac
done
echo "== $card"
printf '%s\n' "${table[@]}"
