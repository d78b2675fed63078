#!/usr/bin/env bash
# Configures and builds sshsoak into a build folder (default: build/).
#   scripts/build.sh [BUILD_DIR] [extra cmake -D options...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$root/build}
shift || true
"$root/scripts/setup.sh"
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
# Quiet when it works; the whole compiler output when it does not.
log=$(mktemp)
if ! cmake --build "$dir" -j"$(nproc)" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "build.sh: the build in $dir failed" >&2
  exit 1
fi
grep -E 'warning:' "$log" >&2 || true
rm -f "$log"
