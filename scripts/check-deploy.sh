#!/usr/bin/env bash
# Checks deploy/ (issue 17): the Kubernetes manifests against the Kubernetes
# API's schemas and types, sshsoak's own rules for them, and the
# Containerfile's syntax (deploy/check/check.mjs says what exactly). Offline
# but for the first run, which installs the pinned npm packages of
# deploy/check/package-lock.json (npm ci). Seconds; run by scripts/test.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
check=$root/deploy/check
"$root/scripts/setup.sh"  # nodejs + npm when the machine has none
# Reinstalled only when the lock file changed since the last install.
if [[ ! -f $check/node_modules/.package-lock.json || $check/package-lock.json -nt $check/node_modules/.package-lock.json ]]; then
  (cd "$check" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
exec node "$check/check.mjs"
