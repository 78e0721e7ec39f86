# Sourced by the scripts: puts the project venv (meson) and nvcc on PATH and configures build/.
# Configuring is skipped when build/ already exists; meson reconfigures itself when needed.
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$top/.venv/bin:$PATH"
[ -d /usr/local/cuda/bin ] && export PATH="$PATH:/usr/local/cuda/bin"
jobs=$(nproc 2>/dev/null || echo 2)

mimo_setup() { # $1 = build dir, rest = meson options
  local dir=$1; shift
  if [ ! -f "$top/$dir/build.ninja" ]; then
    meson setup "$top/$dir" "$top" -Dpython="$top/.venv/bin/python3" "$@" >"$top/$dir.setup.log" 2>&1 || {
      cat "$top/$dir.setup.log" >&2; return 1; }
  fi
  meson compile -C "$top/$dir" -j "$jobs" >"$top/$dir.compile.log" 2>&1 || {
    cat "$top/$dir.compile.log" >&2; return 1; }
}
