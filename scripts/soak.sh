#!/usr/bin/env bash
# The stress-testing guide's 24-hour test, run by sshsoak, ending with the
# leak verdict (docs/runbook.md, "24-hour soak"):
#   memory stable      -> memory_slope_mb_per_h (every process's RSS slope after warm-up < 1 MB/h)
#   fds stable         -> fd_growth (0 after warm-up; back to the first connect's after every reconnect)
#   sockets closed     -> close_wait_sockets (0 at the end)
#   no orphaned conns  -> abnormal_ends 0, reconnect_rate_pct (every drop recovered)
#
#   scripts/soak.sh [--accelerated] [--duration D] [--sessions N] [--targets LIST]
#                   [--out DIR] [-- MORE SSHSOAK FLAGS]
#
#   (default)       24 hours: the default workload (PTY cycle every 1 s, exec poll
#                   every 5 s, keepalive every 5 s) and every session dropped every
#                   5 minutes (288 drops and reconnects per session)
#   --accelerated   1 hour carrying a day's worth of PTY cycles and reconnects:
#                   every interval divided by 24 where the flag allows it
#                     PTY pause      1 s      / 24 = 0.042 s    (24x: 86,400 cycles/session)
#                     drop period    300 s    / 24 = 12.5 -> 12 s (300 drops >= a day's 288)
#                     exec poll      5 s      / 24 = 0.21 -> 1 s  (the flag's floor: 5x)
#                     keepalive      5 s      / 24 = 0.21 -> 1 s  (the flag's floor: 5x)
#                     checkpoint     300 s    -> 60 s (a kill loses at most a minute)
#                     warm-up        600 s    -> 120 s
#                     --max-cpu-pct  5 % per 10 sessions x 24 (the load is 24x: CPU is
#                                    judged against 24x the budget; give your own after --)
#                   rollups (60 s), detailed samples (60 s) and the leak fit's minimum
#                   (600 s) are measurement periods, not workload: unchanged.
#   --duration D    override the length: 90, 90s, 15m, 2h (a short smoke run)
#   --sessions N    default 10
#   --targets LIST  host[:port],... (default: sshsoak's private sshd on 127.0.0.1,
#                   whose per-connection processes are then judged too); give
#                   --user/--key/--known-hosts after --
#   --out DIR       where the log, the HTML and the table go (default ./soak-<UTC time>)
#
# The binaries: $SSHSOAK if set (sshsoak-agent beside it); else BUILD_DIR
# (default build/ of this checkout), built first with scripts/build.sh (which
# installs the dependencies on a fresh Debian machine; SKIP_BUILD=1 uses the
# build as it is). Exit code: sshsoak's (0 all criteria passed, 1 a criterion
# failed, see docs/reference.md "Exit codes").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

accelerated=0
duration=""
sessions=10
targets=""
out=""
extra=()
while (($#)); do
  case $1 in
    --accelerated) accelerated=1 ;;
    --duration) duration=${2:?--duration needs a value}; shift ;;
    --sessions) sessions=${2:?--sessions needs a value}; shift ;;
    --targets) targets=${2:?--targets needs a value}; shift ;;
    --out) out=${2:?--out needs a value}; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "soak.sh: unknown option '$1' (scripts/soak.sh --help; sshsoak's own flags go after --)" >&2; exit 2 ;;
  esac
  shift
done

[[ $sessions =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: --sessions '$sessions': expected a whole number >= 1" >&2; exit 2; }

# "90", "90s", "15m", "2h" -> seconds.
seconds() {
  local v=$1
  case $v in
    *h) echo $((10#${v%h} * 3600)) ;;
    *m) echo $((10#${v%m} * 60)) ;;
    *s) echo $((10#${v%s})) ;;
    *) echo $((10#$v)) ;;
  esac
}

if ((accelerated)); then
  secs=3600
  cpuBudget=$((12 * (sessions > 10 ? sessions : 10)))  # 5 % x max(N, 10) / 10 x 24
  workload=(--pty-interval-secs 0.042 --poll-interval-secs 1 --keepalive-interval-secs 1
            --drop 12/12 --checkpoint-secs 60 --warmup-secs 120 --max-cpu-pct "$cpuBudget")
  kind="accelerated (1 h carrying a day's PTY cycles and reconnects)"
else
  secs=86400
  workload=(--drop 300/300 --checkpoint-secs 300 --warmup-secs 600)
  kind="24-hour"
fi
if [[ -n $duration ]]; then
  [[ $duration =~ ^[0-9]+[smh]?$ ]] || { echo "soak.sh: --duration '$duration': expected N, Ns, Nm or Nh" >&2; exit 2; }
  secs=$(seconds "$duration")
  ((secs >= 1)) || { echo "soak.sh: --duration must be at least 1 s" >&2; exit 2; }
fi

if [[ -n ${SSHSOAK:-} ]]; then
  bin=$SSHSOAK
else
  build=${BUILD_DIR:-$root/build}
  if [[ ${SKIP_BUILD:-0} != 1 ]]; then "$root/scripts/build.sh" "$build" >&2; fi
  bin=$build/bin/sshsoak
fi
[[ -x $bin ]] || { echo "soak.sh: $bin is not an executable sshsoak (build it: scripts/build.sh, or set SSHSOAK)" >&2; exit 3; }

out=${out:-$PWD/soak-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
log=$out/soak.jsonl
html=$out/soak.html
args=(--sessions "$sessions" --duration-secs "$secs" --log-path "$log" --html "$html" "${workload[@]}")
[[ -n $targets ]] && args+=(--targets "$targets")

echo "soak.sh: $kind soak, $sessions sessions, $secs s; log $log" >&2
echo "soak.sh: $bin ${args[*]} ${extra[*]}" >&2
# sshsoak handles Ctrl-C itself (a clean stop with its summary): this script
# then goes on to the verdict.
rc=0
"$bin" "${args[@]}" "${extra[@]}" || rc=$?

# The table and verdict again, by the one reader every report uses (a run
# killed before its summary is judged from its last checkpoint).
table=$out/report.md
"$bin" report "$log" >"$table" || true
echo
echo "== leak verdict ($kind soak) =="
grep -E '^\| (memory_slope_mb_per_h|fd_growth|close_wait_sockets|abnormal_ends|reconnect_rate_pct) ' "$table" || true
if ! grep -qE '^\| (memory_slope_mb_per_h|fd_growth) ' "$table"; then
  echo "(no leak criteria in $table: is this sshsoak built from issue 14 or later, and did the run last long enough?)"
fi
echo
echo "result: $([[ $rc == 0 ]] && echo PASS || echo "FAIL (sshsoak exit $rc)")"
echo "log:    $log"
echo "table:  $table"
echo "HTML:   $html"
exit "$rc"
