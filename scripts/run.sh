#!/usr/bin/env bash
# Sets up, builds and runs sshsoak. With no arguments: a short soak against
# a private OpenSSH sshd on 127.0.0.1 with throwaway keys. Any arguments go
# to sshsoak as they are (scripts/run.sh --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh" "$root/build" >&2
exec "$root/build/bin/sshsoak" "$@"
