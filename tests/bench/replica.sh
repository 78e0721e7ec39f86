#!/usr/bin/env bash
# Conversion at MiMo-V2.5-Pro's own scale, on replicas of Pro's FP8 checkpoint, in one run.
#
# Sources (made once by mimo-mkfixture and kept in WORK for the next run):
#   WORK/pro-tiny-E   --preset pro --dims tiny --experts E: Pro's tensor names (70 layers, fused
#                     qkv with FP8 scales, 3 MTP layers, its file layout) at tiny widths with
#                     generated data; 605 + 414 E tensors: E = 23: 10,127; 95: 39,935; 384:
#                     159,581 (all of Pro's)
#   WORK/pro-sparse   --preset pro --sparse: Pro's real shapes (1.03 TB of tensors), headers
#                     only, the data a hole
# Runs `mimo-quantize SRC OUT --dry-run -q` and `mimo-quantize SRC OUT -q --threads 2` on each
# tiny-dims replica, the dry run on the sparse one, and `mimo-verify OUT --threads 2` on the
# whole run's artifact of all 159,581 tensors, each under /usr/bin/time -f "%e %U %S %M" (peak
# RSS = ru_maxrss), prints one table line per run, then checks for the dry run and the whole
# run separately (the dry run is taken 3 times at each size and its least CPU kept: at 10k
# tensors it takes ~0.05 s, near the 0.01 s resolution of the record):
#   cpu-per-tensor  CPU (user + system) per tensor at the largest size <= 1.5 x that at the
#                   smallest (CPU time, not wall: the machine is shared)
#   rss-slope       (peak RSS largest - peak RSS smallest) / (tensors largest - tensors
#                   smallest) <= 1024 bytes per tensor
# and that every run and mimo-verify exit 0. Exit 1 names each failed rule; 2 usage; 3 a
# source could not be made.
# usage: replica.sh WORK [EXPERTS...]   (default 23 95 384; BUILD=build dir, absolute or
#        relative to the source tree, default build)
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: replica.sh WORK [EXPERTS...]" >&2
  exit 2
fi
work=$1; shift
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(23 95 384)
top=$(cd "$(dirname "$0")/../.." && pwd)
case ${BUILD:-build} in
  /*) build=$BUILD ;;
  *) build=$top/${BUILD:-build} ;;
esac
# meson test sets MALLOC_PERTURB_ to a random value, which makes glibc write every block it hands
# out and frees: in one trial 50-65 MB more peak RSS in the whole runs. Measure without it.
export MALLOC_PERTURB_=0
mk=$build/tools/mimo-mkfixture qz=$build/tools/mimo-quantize vf=$build/tools/mimo-verify
mkdir -p "$work"
work=$(cd "$work" && pwd)
failed=()

# Makes a source once; the index is written last, so a directory without one is incomplete.
make_src() {
  local dir=$1; shift
  [ -f "$dir/model.safetensors.index.json" ] && return 0
  rm -rf "$dir"
  if ! "$mk" --preset pro --variant fp8 "$@" --out "$dir" -q > /dev/null; then
    echo "replica.sh: mimo-mkfixture $* failed" >&2
    exit 3
  fi
}

count() {
  python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["weight_map"]))' \
    "$1/model.safetensors.index.json"
}

# timed NAME CMD...: runs CMD under /usr/bin/time into $work/NAME.time; records a failed exit.
timed() {
  local name=$1; shift
  if ! /usr/bin/time -f "%e %U %S %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err"; then
    failed+=("exit: $name exited non-zero (see $work/$name.err)")
  fi
}

# row LABEL N TIMEFILE: prints one table line from a /usr/bin/time record.
row() {
  local label=$1 n=$2 wall usr sys kb
  read -r wall usr sys kb < <(tail -n 1 "$3")
  awk -v l="$label" -v n="$n" -v w="$wall" -v u="$usr" -v s="$sys" -v kb="$kb" 'BEGIN {
    printf "%9d  %-10s %8.2f %8.2f %10d %14.1f %12.0f\n", n, l, w, u + s, kb, (u + s) * 1e6 / n, kb * 1024 / n }'
}

printf "%9s  %-10s %8s %8s %10s %14s %12s\n" tensors run "wall s" "CPU s" "peak kB" "CPU us/tensor" "B/tensor"
declare -A n_of cpu_of kb_of
for e in "${sizes[@]}"; do
  src=$work/pro-tiny-$e out=$work/out-pro-tiny-$e
  make_src "$src" --dims tiny --experts "$e" --threads 2
  n=$(count "$src")
  rm -rf "$out" "$out.mimo-partial" "$out.mimo-publish.json"
  for i in 1 2 3; do
    timed "dry-$e-$i" "$qz" "$src" "$out" --dry-run -q
  done
  # the record with the least CPU (user + system) of the three
  awk '{ print $2 + $3, FILENAME }' "$work/dry-$e-"[123].time | sort -g | head -n 1 | \
    { read -r _ best; cp "$best" "$work/dry-$e.time"; }
  timed "run-$e" "$qz" "$src" "$out" -q --threads 2
  for k in dry run; do
    row "$k" "$n" "$work/$k-$e.time"
    read -r _ usr sys kb < <(tail -n 1 "$work/$k-$e.time")
    n_of[$k,$e]=$n
    cpu_of[$k,$e]=$(awk -v u="$usr" -v s="$sys" 'BEGIN { print u + s }')
    kb_of[$k,$e]=$kb
  done
  if [ "$e" = "${sizes[-1]}" ]; then
    timed "verify-$e" "$vf" "$out" --threads 2
    row verify "$n" "$work/verify-$e.time"
    grep -h '^verdict' "$work/verify-$e.out" || true
  fi
  rm -rf "$out"
done

sparse=$work/pro-sparse
make_src "$sparse" --sparse
n=$(count "$sparse")
rm -rf "$work/out-pro-sparse"
timed dry-sparse "$qz" "$sparse" "$work/out-pro-sparse" --dry-run -q
row "dry (real)" "$n" "$work/dry-sparse.time"
grep -h '^tensors:' "$work/dry-sparse.out" || true

lo=${sizes[0]} hi=${sizes[-1]}
for k in dry run; do
  name=$([ $k = dry ] && echo "dry run" || echo "whole run")
  read -r ratio slope < <(awk -v n0="${n_of[$k,$lo]}" -v n1="${n_of[$k,$hi]}" -v c0="${cpu_of[$k,$lo]}" \
    -v c1="${cpu_of[$k,$hi]}" -v k0="${kb_of[$k,$lo]}" -v k1="${kb_of[$k,$hi]}" 'BEGIN {
      r = (c0 > 0) ? (c1 / n1) / (c0 / n0) : 0; printf "%.3f %.1f\n", r, (k1 - k0) * 1024 / (n1 - n0) }')
  printf "%s: CPU per tensor at %d tensors / at %d = %s (limit 1.5); peak RSS slope %s B/tensor (limit 1024)\n" \
    "$name" "${n_of[$k,$hi]}" "${n_of[$k,$lo]}" "$ratio" "$slope"
  awk -v r="$ratio" 'BEGIN { exit !(r > 1.5) }' && failed+=("cpu-per-tensor: $name, ratio $ratio > 1.5")
  awk -v s="$slope" 'BEGIN { exit !(s > 1024) }' && failed+=("rss-slope: $name, $slope B/tensor > 1024")
done
if [ ${#failed[@]} -gt 0 ]; then
  for f in "${failed[@]}"; do echo "FAIL $f"; done
  exit 1
fi
echo "PASS"
