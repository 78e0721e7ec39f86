#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds twice (optimized with CUDA kernels when
# nvcc is present; ASan+UBSan without CUDA), runs every suite in the first build and every suite
# but interop and gpu in the sanitizer build, then every fuzz target for 60 s (scripts/fuzz.sh), and
# ends with "N passed, N failed, N skipped".
# A GPU test on a machine without a GPU counts as skipped, never as passed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/bootstrap.sh" || exit 1
source "$here/env.sh"
cd "$top"

mimo_setup build || { echo "0 passed, 1 failed"; exit 1; }
mimo_setup build-san -Dcuda=disabled -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized \
  || { echo "0 passed, 1 failed"; exit 1; }

meson test -C build --num-processes "$jobs" --print-errorlogs --no-suite slow
meson test -C build-san --num-processes "$jobs" --print-errorlogs --no-suite interop --no-suite gpu --no-suite slow --no-suite e2e-fs

# Every libFuzzer target for MIMO_FUZZ_SECONDS (default 60) under ASan+UBSan (scripts/fuzz.sh):
# one result per target; MIMO_FUZZ_SECONDS=0 leaves fuzzing out.
fuzz_pass=0 fuzz_fail=0
fsecs=${MIMO_FUZZ_SECONDS:-60}
if [ "$fsecs" != 0 ]; then
  for t in safetensors json index config manifest tokenizer maskzip; do
    if bash "$here/fuzz.sh" "$fsecs" "$t"; then fuzz_pass=$((fuzz_pass + 1)); else fuzz_fail=$((fuzz_fail + 1)); fi
  done
fi

count() { # $1 = build dir, $2 = result name in testlog.json
  grep -o "\"result\": \"$2\"" "$top/$1/meson-logs/testlog.json" 2>/dev/null | wc -l
}
pass=0 fail=0 skip=0
for b in build build-san; do
  if [ ! -s "$top/$b/meson-logs/testlog.json" ]; then fail=$((fail + 1)); continue; fi
  pass=$((pass + $(count $b OK)))
  skip=$((skip + $(count $b SKIP)))
  fail=$((fail + $(count $b FAIL) + $(count $b TIMEOUT) + $(count $b ERROR) + $(count $b UNEXPECTEDPASS)))
done
pass=$((pass + fuzz_pass)) fail=$((fail + fuzz_fail))
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
