#!/usr/bin/env bash
# The relay-cost bench (issue 16): the direct path beside sshsoak-proxy with
# no fault in force, in one run on loopback: added latency per hop (p50/p99
# of 64-byte round trips to a TCP echo server), bulk TCP throughput and the
# relay's CPU per MB, then sshsoak's own transfer workload against the
# embedded sshd direct and through the relay (MB/s, agent vs relay CPU per
# MB). Driver: bench/relay_cost.py; figures in docs/benchmarks.md,
# "Issue 16", "Relay cost".
#
#   scripts/bench-relay.sh          (ROUND_TRIPS=20000 BULK_MB=1000 TRANSFER_SECS=10 OUT=FILE)
#
# Time: about 40 s. Environment: BUILD_DIR (default build/), SKIP_BUILD=1 to
# use it as it is. Needs root for the embedded sshd (part 3), as the
# integration tests do; stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  nice -n 10 "$root/scripts/build.sh" "$build" >&2
fi
for exe in sshsoak sshsoak-agent sshsoak-proxy; do
  [[ -x $build/bin/$exe ]] || { echo "bench-relay.sh: $build/bin/$exe missing: build first (scripts/build.sh)" >&2; exit 3; }
done
exec /usr/bin/python3 "$root/bench/relay_cost.py" "$build/bin"
