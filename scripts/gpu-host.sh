#!/usr/bin/env bash
# Build and run the GPU suite on the GPU test host (../shared/GPU_HOST.md): Ubuntu with CUDA,
# meson, ninja and torch, but no cJSON or PCRE2 headers. They come from Debian's .deb files placed
# in .deps/ (apt-get download libcjson1 libcjson-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0
# libpcre2-32-0 libpcre2-posix3), unpacked into a private prefix.
# Usage: bash scripts/gpu-host.sh [LOGDIR]   (writes build-gpu/ and LOGDIR/*.log)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
log=${1:-$top/build-gpu-logs}
mkdir -p "$log"
cd "$top"
if ! pkg-config --exists libcjson libpcre2-8 2>/dev/null; then
  pre=/tmp/mimo-deps
  for f in .deps/*.deb; do dpkg -x "$f" "$pre"; done
  pc="$pre/usr/lib/x86_64-linux-gnu/pkgconfig"
  for f in "$pc"/libcjson.pc "$pc"/libpcre2-*.pc; do [ -f "$f" ] && sed -i "s#=/usr#=$pre/usr#" "$f"; done
  export PKG_CONFIG_PATH="$pc" LD_LIBRARY_PATH="$pre/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export PATH="$PATH:/usr/local/cuda/bin"
[ -f build-gpu/build.ninja ] || meson setup build-gpu -Dpython=python3 >"$log/setup.log" 2>&1 || { cat "$log/setup.log"; exit 1; }
meson compile -C build-gpu >"$log/compile.log" 2>&1 || { tail -50 "$log/compile.log"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$log/gpu.txt"
meson test -C build-gpu --suite gpu --print-errorlogs 2>&1 | tee "$log/gpu-tests.log" | tail -8
build-gpu/tests/gpu/test_mxfp4_dequant_gpu --bench 2>&1 | tee "$log/bench.log" | tail -3
