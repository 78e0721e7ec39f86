#!/usr/bin/env bash
# Conversion time against a plain copy of the same input files to the same disk, measured in the
# same run: usage: convert_vs_copy.sh SRC_CHECKPOINT WORK_DIR [mimo-quantize options...]
# The copy is `cp` of every file of SRC followed by `sync` (the converter fsyncs what it writes),
# with the source in the page cache for both (each is preceded by a read of the source).
# Prints: copy seconds, convert seconds, ratio, input GB/s, peak RSS of the converter.
set -euo pipefail
src=$1; work=$2; shift 2
top=$(cd "$(dirname "$0")/../.." && pwd)
tool=$top/build/tools/mimo-quantize
mkdir -p "$work"
rm -rf "$work/copy" "$work/out" "$work/out.mimo-partial"
bytes=$(du -sb --apparent-size "$src" | cut -f1)
cat "$src"/*.safetensors > /dev/null                         # warm the page cache
t0=$(date +%s.%N); cp -r "$src" "$work/copy"; sync; t1=$(date +%s.%N)
rm -rf "$work/copy"; sync
cat "$src"/*.safetensors > /dev/null
/usr/bin/time -v -o "$work/time.txt" "$tool" "$src" "$work/out" -q "$@" > "$work/run.txt"
sync
t2=$(date +%s.%N)
conv=$(awk -F': ' '/Elapsed/ {split($2,a,":"); s=0; for(i=1;i<=length(a);i++) s=s*60+a[i]; print s}' "$work/time.txt")
rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$work/time.txt")
awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v c="$conv" -v r="$rss" 'BEGIN {
  cp = t1 - t0
  printf "source  %.0f bytes\ncopy    %.2f s (%.3f GB/s)\nconvert %.2f s (%.3f GB/s of input)\nratio   %.2f x copy time\npeak RSS %.0f kB\n", b, cp, b / cp / 1e9, c, b / c / 1e9, c / cp, r }'
cat "$work/run.txt"
