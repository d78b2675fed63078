#!/usr/bin/env bash
# sshsoak side by side with plain OpenSSH (issue 7): builds with the
# benchmarks, then runs every case against a private sshd on 127.0.0.1 and
# prints one table; the figures also go to bench-results.json. The driver is
# bench/driver/ (one module per case); docs/benchmarks.md.
#
#   scripts/bench.sh [--quick] [--only micro,handshake,...] [--reps N]
#                    [--out FILE] [--workdir DIR]
#
#   --quick   10 s windows, N=10 only, 1 repetition (about 3 minutes): to try it
#   full      60 s windows, N up to 200, 3 repetitions (see docs/benchmarks.md)
#   issue 12: --only churn,transfer,memory (connection churn and bulk transfer
#             against OpenSSH, agents' memory per workload); --memory-secs 600
#             for the 10-minute memory target
#   issue 13: --only jobs (4 workers, short jobs of 3 commands: sshsoak
#             --reuse on/off vs plain ssh per job vs ControlMaster);
#             --jobs-count N (1000), --jobs-compare-reuse
#
# Environment: BUILD_DIR (default build/), SKIP_BUILD=1 to use it as it is.
# Needs root for sshd (as the integration tests do). Touches nothing but its
# own sshd, its own clients and temp dirs, all stopped/removed by PID at exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  nice -n 10 "$root/scripts/build.sh" "$build" -DSSHSOAK_BUILD_BENCH=ON >&2
fi
for exe in sshsoak sshsoak-agent sshsoak-bench-client sshsoak-bench-hotpath; do
  [[ -x $build/bin/$exe ]] || { echo "bench.sh: $build/bin/$exe missing: build with -DSSHSOAK_BUILD_BENCH=ON" >&2; exit 3; }
done
# 200 agents + their pipes, 200 ssh clients: more than the default 1024 fds.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# The driver (bench/driver/, a package) needs only the standard library:
# Debian's /usr/bin/python3, not whichever python3 (pyenv, a venv) is first in PATH.
PYTHONPATH="$root/bench${PYTHONPATH:+:$PYTHONPATH}" exec /usr/bin/python3 -P -m driver --bin "$build/bin" "$@"
