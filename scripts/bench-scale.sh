#!/usr/bin/env bash
# The scale benchmark (issue 14): N light sshsoak sessions beside N idle
# plain OpenSSH clients, N = 10, 200, 1000 by default, against one private
# sshd on 127.0.0.1; prints one table (sessions connected, abnormal ends,
# supervisor CPU, CPU and PSS per session for both, total PSS, log bytes per
# session-hour, `sshsoak report --html` time, missed samples) and writes
# bench-scale-results.json. The driver is bench/driver/scale_ref.py;
# docs/benchmarks.md, "Issue 14".
#
#   scripts/bench-scale.sh [--ns 10,200,1000] [--secs 120] [--keepalive-secs 15]
#                          [--poll-secs 60] [--pty-secs 60] [--token-rate 25]
#                          [--no-ref] [--out FILE] [--workdir DIR] [-- SSHSOAK FLAGS...]
#
# Time: per N about (N/25 ramp + 10 settle + secs) twice, plus shutdown and
# the report: ~12 minutes for the defaults on 2 cores.
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
  [[ -x $build/bin/$exe ]] || { echo "bench-scale.sh: $build/bin/$exe missing: build first (scripts/build.sh)" >&2; exit 3; }
done
# 1000 agents with their pipes and sockets, then 1000 ssh clients: far more
# than the default 1024 fds; sshsoak raises its own limit too.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# 1000 sessions mean ~3000 processes (agents, sshd's two per connection).
ulimit -u unlimited 2>/dev/null || true
# Debian's /usr/bin/python3 (standard library only), not pyenv's or a venv's.
PYTHONPATH="$root/bench${PYTHONPATH:+:$PYTHONPATH}" exec /usr/bin/python3 -P -m driver.scale_ref --bin "$build/bin" "$@"
