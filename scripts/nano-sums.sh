#!/usr/bin/env bash
# Regenerates fixtures/nano/SHA256SUMS: the SHA-256 of every file of the nano model's BF16
# checkpoint and its drafter (fixtures/nano/bf16/, dflash/ included) as they are once decompressed,
# i.e. FILE.zst is hashed as FILE (its decompressed bytes) and every other file as it is stored.
# Run it after replacing any of those files (a retrained drafter, say); scripts/demo.sh and the e2e
# test tests/run/test_nano_flow.sh check the decompressed tree against this list.
# Format: `sha256sum` lines ("HASH  bf16/PATH"); needs the zstd CLI.
set -euo pipefail
nano=$(cd "$(dirname "$0")/../fixtures/nano" && pwd)
command -v zstd >/dev/null || { echo "nano-sums: the zstd command is missing (scripts/bootstrap.sh installs it)" >&2; exit 3; }
tmp="$nano/SHA256SUMS.tmp-$$"
trap 'rm -f "$tmp"' EXIT
cd "$nano"
find bf16 -type f | LC_ALL=C sort | while IFS= read -r f; do
  case "$f" in
    *.zst) h=$(zstd -dcq -- "$f" | sha256sum); name=${f%.zst} ;;
    *) h=$(sha256sum < "$f"); name=$f ;;
  esac
  printf '%s  %s\n' "${h%% *}" "$name"
done > "$tmp"
mv "$tmp" SHA256SUMS
trap - EXIT
echo "nano-sums: wrote $nano/SHA256SUMS ($(wc -l < SHA256SUMS) files)" >&2
