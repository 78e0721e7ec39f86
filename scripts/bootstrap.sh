#!/usr/bin/env bash
# Installs what mimo-quant needs to build and test, and nothing that is already there.
# Idempotent: a second run installs nothing and takes about a second.
#   system packages (apt-get): compiler, ninja, cJSON, OpenSSL libcrypto, zstd, PCRE2, python3-venv,
#   clang with libFuzzer (scripts/fuzz.sh) and valgrind (the leak check of the CLIs)
#   .venv (PyPI): meson, and the peers' libraries the interop tests check our output with
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

pkgs=(build-essential pkg-config ninja-build libcjson-dev libssl-dev libzstd-dev zstd libpcre2-dev python3 python3-venv
      clang libclang-rt-14-dev valgrind)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Pinned so a release gate measures the same peers every time.
req="meson==1.12.1 numpy==2.4.6 safetensors==0.8.0 ml_dtypes==0.6.0 tokenizers==0.23.3"
venv="$top/.venv"
stamp="$venv/.mimo-req"
if [ ! -x "$venv/bin/python3" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$req" ]; then
  echo "bootstrap: preparing $venv ($req)" >&2
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install -q --disable-pip-version-check $req
  echo "$req" > "$stamp"
fi
