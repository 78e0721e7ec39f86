#!/usr/bin/env bash
# Conversion against a plain copy of the same input files to the same disk, as PAIRS pairs run in
# ABBA order (copy, convert; convert, copy; ...) so a drift in the disk's speed during the run
# falls on both sides alike.
# usage: convert_abba.sh SRC_CHECKPOINT WORK_DIR [PAIRS (default 4)] [mimo-quantize options...]
# Environment: MIMO_QUANTIZE, the converter (default build/tools/mimo-quantize of this tree).
# Before every run the outputs of the previous one are deleted (then `sync`) and the source is
# read again (`cat` of every source file), so both sides start with the source in the page cache
# and nothing of theirs on the disk's queue. The copy is `cp -r SRC` followed by `sync`; the
# converter fsyncs what it writes and is followed by `sync` too.
# Prints one line per run, then the medians: copy and convert seconds, the ratio of convert to
# copy time (median of the per-pair ratios), and the converter's CPU time (user + sys) per GB
# (1e9 bytes) of input.
set -euo pipefail
src=$1; work=$2; shift 2
pairs=4
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then pairs=$1; shift; fi
top=$(cd "$(dirname "$0")/../.." && pwd)
tool=${MIMO_QUANTIZE:-$top/build/tools/mimo-quantize}
[ -x "$tool" ] || { echo "convert_abba.sh: no converter at $tool (set MIMO_QUANTIZE)" >&2; exit 2; }
mkdir -p "$work"
bytes=$(du -sb --apparent-size "$src" | cut -f1)
log=$work/abba.tsv
: > "$log"

clean() { rm -rf "$work/copy" "$work/out" "$work/out.mimo-partial"; sync; }
reread() { cat "$src"/*.safetensors "$src"/*.json > /dev/null; }
now() { date +%s.%N; }

run_copy() {
    clean; reread
    local t0 t1; t0=$(now); cp -r "$src" "$work/copy"; sync; t1=$(now)
    awk -v p="$1" -v a="$t0" -v b="$t1" 'BEGIN { printf "%d\tcopy\t%.3f\t0\t0\n", p, b - a }' >> "$log"
}

run_convert() {
    clean; reread
    local t0 t1; t0=$(now)
    /usr/bin/time -f "%U %S %M" -o "$work/time.txt" "$tool" "$src" "$work/out" -q "$@" > "$work/run.txt"
    sync; t1=$(now)
    read -r u s m < "$work/time.txt"
    awk -v p="$pair" -v a="$t0" -v b="$t1" -v u="$u" -v s="$s" -v m="$m" \
        'BEGIN { printf "%d\tconvert\t%.3f\t%.2f\t%s\n", p, b - a, u + s, m }' >> "$log"
}

for ((pair = 0; pair < pairs; pair++)); do
    if ((pair % 2 == 0)); then run_copy "$pair"; run_convert "$@"; else run_convert "$@"; run_copy "$pair"; fi
    tail -n 2 "$log" | awk -v b="$bytes" -F'\t' '{ printf "pair %d %-7s %7.2f s%s\n", $1, $2, $3,
        $2 == "convert" ? sprintf("  cpu %.2f s (%.2f core-s/GB)  rss %d kB", $4, $4 / (b / 1e9), $5) : "" }'
done
clean

awk -v b="$bytes" -F'\t' '
function median(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$2 == "copy" { cp[$1] = $3 }
$2 == "convert" { cv[$1] = $3; cpu[$1] = $4 }
END {
    n = 0
    for (p in cv) { n++; r[n] = cv[p] / cp[p]; c[n] = cpu[p]; w1[n] = cp[p]; w2[n] = cv[p] }
    printf "source   %.0f bytes, %d pairs (ABBA)\n", b, n
    printf "copy     %.2f s median\nconvert  %.2f s median\n", median(w1, n), median(w2, n)
    printf "ratio    %.3f x copy time (median of per-pair ratios)\n", median(r, n)
    printf "cpu      %.2f core-s median, %.3f core-s per GB of input\n", median(c, n), median(c, n) / (b / 1e9)
}' "$log"
