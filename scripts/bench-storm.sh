#!/usr/bin/env bash
# Reconnect storms side by side (issue 16): N sessions dropped at once against
# a private sshd with OpenSSH's default MaxStartups (10:30:100), with
# sshsoak --reconnect-pacing adaptive, --reconnect-pacing fixed, and plain
# OpenSSH clients reconnecting in an autossh-style loop; prints one table
# (back / N, time until the last is back, p50/p95, sshd's MaxStartups drops,
# the adaptive pacer's rate range, the machine's load) and writes
# bench-storm-results.json. The driver is bench/driver/storm_pacing.py;
# docs/benchmarks.md, "Issue 16", "Reconnect storms".
#
#   scripts/bench-storm.sh [--ns 100[,500]] [--only adaptive,fixed,openssh_loop]
#                          [--back-secs 90] [--out FILE] [--workdir DIR]
#
# Time: about 1.5 minutes for N=100 (all three columns); N=500 about 6.
# Environment: BUILD_DIR (default build/), SKIP_BUILD=1 to use it as it is.
# Needs root for sshd (as the integration tests do). Touches nothing but its
# own sshd, its own clients and temp dirs, all stopped/removed by PID at exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  nice -n 10 "$root/scripts/build.sh" "$build" >&2
fi
for exe in sshsoak sshsoak-agent; do
  [[ -x $build/bin/$exe ]] || { echo "bench-storm.sh: $build/bin/$exe missing: build first (scripts/build.sh)" >&2; exit 3; }
done
# 500 agents or 500 ssh loops with their pipes and sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
ulimit -u unlimited 2>/dev/null || true
# Debian's /usr/bin/python3 (standard library only), not pyenv's or a venv's.
PYTHONPATH="$root/bench${PYTHONPATH:+:$PYTHONPATH}" exec /usr/bin/python3 -P -m driver.storm_pacing --bin "$build/bin" "$@"
