#!/usr/bin/env bash
# Builds every libFuzzer target in tests/fuzz with clang and runs each for $1 seconds (default
# 60), one after the other. Each target starts from its seeds copied into a work directory
# build-fuzz/work-<target> (the committed seeds under tests/fuzz/seeds/<target>; the safetensors
# and JSON targets also get the generated malformed-safetensors corpus), so the committed seeds
# never change. Prints per target the libFuzzer line stat::number_of_executed_units and the
# coverage at the start and the end; the full logs are build-fuzz/<target>.log. Crashes, leaks
# and timeouts land in build-fuzz/ (crash-*, leak-*, timeout-*); the script exits 1 when any
# target found one.
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]      (targets: the names below, default all)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
secs=${1:-60}
shift || true
command -v clang >/dev/null || { echo "fuzz: clang is required (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }

all=(safetensors json index config manifest tokenizer maskzip)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

out=build-fuzz
mkdir -p "$out/obj" "$out/gen"

# The library sources are compiled once, instrumented for coverage and the sanitizers, into an
# archive; each target links only the objects it needs.
cflags="-g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson -fsanitize=address,undefined -fno-sanitize-recover=undefined"
objs=()
for src in libquant/*.c runtime/*.c runtime/cpu/*.c; do
  obj="$out/obj/$(echo "${src%.c}" | tr / _).o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find libquant runtime -name '*.h' -newer "$obj" -print -quit)" ]; then
    clang $cflags -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
rm -f "$out/libfuzzlq.a"
ar rcs "$out/libfuzzlq.a" "${objs[@]}"
libs="-lcjson -lcrypto -lpcre2-8 -lpthread -lm"
# The generated malformed-safetensors corpus (tests/io/corpus.c), written as files.
clang $cflags tests/io/gen_corpus.c tests/io/corpus.c tests/io/st_build.c "$out/libfuzzlq.a" $libs -o "$out/gen_corpus"
rm -rf "$out/gen" && mkdir -p "$out/gen"
"$out/gen_corpus" "$out/gen" >/dev/null 2>&1

# Per target: max input length (a bound on one execution's cost; seeds are below it).
declare -A maxlen=([safetensors]=65536 [json]=65536 [index]=16384 [config]=16384 [manifest]=16384
                   [tokenizer]=32768 [maskzip]=16384)

# Targets that need files (index, manifest, tokenizer, maskzip) write them under $TMPDIR: a RAM
# file system when there is one, which makes them about 30 times faster than a disk.
# An explicit TMPDIR wins.
tmp=${TMPDIR:-}
if [ -z "$tmp" ]; then
  tmp=/tmp
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then tmp=/dev/shm; fi
fi

bad=0
for t in "${targets[@]}"; do
  [ -n "${maxlen[$t]:-}" ] || { echo "fuzz: unknown target $t (known: ${all[*]})" >&2; exit 2; }
  clang $cflags -fsanitize=fuzzer "tests/fuzz/fuzz_$t.c" "$out/libfuzzlq.a" $libs -o "$out/fuzz_$t"
  work="$out/work-$t"
  rm -rf "$work" && mkdir -p "$work"
  if [ -d "tests/fuzz/seeds/$t" ]; then cp -r "tests/fuzz/seeds/$t/." "$work/"; fi
  extra=()
  case $t in safetensors|json) extra=("$out/gen") ;; esac
  log="$out/$t.log"
  rc=0
  TMPDIR=$tmp "$out/fuzz_$t" -max_total_time="$secs" -max_len="${maxlen[$t]}" -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$out/$t-" "$work" "${extra[@]}" >"$log" 2>&1 || rc=$?
  start=$(grep -m1 -E '^#[0-9]+[[:space:]]+INITED' "$log" | grep -o 'cov: [0-9]*' || true)
  end=$(grep -E '^#[0-9]+' "$log" | grep -o 'cov: [0-9]*' | tail -n1 || true)
  execs=$(grep 'stat::number_of_executed_units' "$log" || true)
  echo "fuzz_$t: ${execs:-stat::number_of_executed_units: ?} (${start:-cov: ?} at start -> ${end:-cov: ?} at end)"
  if [ "$rc" -ne 0 ]; then
    echo "fuzz_$t: FAILED (exit $rc); the end of $log:" >&2
    tail -n 40 "$log" >&2
    bad=1
  fi
done
exit $bad
