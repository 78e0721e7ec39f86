#!/usr/bin/env bash
# Builds the libFuzzer targets (safetensors reader, strict JSON) with clang and runs each for
# $1 seconds (default 60) from the generated malformed corpus. Crashes land in build-fuzz/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/bootstrap.sh"
source "$here/env.sh"
cd "$top"
secs=${1:-60}
command -v clang >/dev/null || { echo "fuzz: clang is required (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
mimo_setup build
mkdir -p build-fuzz/seeds build-fuzz/work-st build-fuzz/work-json
build/tests/io/gen_corpus build-fuzz/seeds >/dev/null
lib="libquant/safetensors.c libquant/json.c libquant/dtype.c libquant/status.c"
flags="-g -O1 -std=c11 -D_XOPEN_SOURCE=700 -D_DEFAULT_SOURCE -I. -I/usr/include/cjson -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
clang $flags tests/fuzz/fuzz_safetensors.c $lib -lcjson -lm -o build-fuzz/fuzz_safetensors
clang $flags tests/fuzz/fuzz_json.c $lib -lcjson -lm -o build-fuzz/fuzz_json
build-fuzz/fuzz_safetensors -max_total_time="$secs" -max_len=65536 -artifact_prefix=build-fuzz/ build-fuzz/work-st build-fuzz/seeds
build-fuzz/fuzz_json -max_total_time="$secs" -max_len=65536 -artifact_prefix=build-fuzz/ build-fuzz/work-json build-fuzz/seeds
