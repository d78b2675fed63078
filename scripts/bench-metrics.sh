#!/usr/bin/env bash
# The scrape-cost benchmark (issue 17; docs/benchmarks.md, "Issue 17",
# "Metrics"): what a scrape of --metrics-listen costs the supervisor at 200
# sessions (target: under 1 ms). Two parts, side by side:
#   1. in process (sshsoak-bench-metrics): a run model, resource stats and
#      leak model filled as an hour of a 200-session run leaves them; the
#      status line's cost (the reference), the text alone, a whole scrape
#      (verdict + text), a whole HTTP request on loopback;
#   2. live (unless --no-live): the same 200-session run against the private
#      sshd twice, without and with a scraper at --rate requests per second,
#      and the supervisor's CPU after warm-up from each summary.
#
#   scripts/bench-metrics.sh [--sessions 200] [--secs 45] [--rate 10] [--no-live] [--runs N]
#
# Time: a few seconds in process; live about 2 x (secs + 10) s.
# Environment: BUILD_DIR (default build/), SKIP_BUILD=1 to use it as it is.
# Needs root for the private sshd (as the integration tests do). Touches
# nothing but its own runs and temp dir, stopped and removed at exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
sessions=200 secs=45 rate=10 live=1 runs=2000
while [[ $# -gt 0 ]]; do
  case $1 in
    --sessions) sessions=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --no-live) live=0; shift ;;
    *) echo "bench-metrics.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  nice -n 10 "$root/scripts/build.sh" "$build" -DSSHSOAK_BUILD_BENCH=ON >&2
fi
for exe in sshsoak sshsoak-agent sshsoak-bench-metrics; do
  [[ -x $build/bin/$exe ]] || { echo "bench-metrics.sh: $build/bin/$exe missing: build with -DSSHSOAK_BUILD_BENCH=ON" >&2; exit 3; }
done

echo "== in process =="
"$build/bin/sshsoak-bench-metrics" "$runs"
[[ $live == 1 ]] || exit 0

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/sshsoak-bench-metrics.XXXXXX)
soak_pid=
cleanup() {
  [[ -n $soak_pid ]] && kill -TERM "$soak_pid" 2>/dev/null && wait "$soak_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# One run; with a rate, a scraper (Debian's python3, standard library only)
# asks for /metrics that often until the run ends, at most secs x rate times.
one_run() {
  local name=$1 scrape_rate=$2
  local log=$work/$name.jsonl
  "$build/bin/sshsoak" --sessions "$sessions" --duration-secs "$secs" --warmup-secs 15 \
    --token-rate 40 --token-burst 8 --metrics-listen 127.0.0.1:0 --log-path "$log" --html "$work/$name.html" \
    --max-cpu-pct 100 --max-memory-mb 100000 </dev/null >"$work/$name.out" 2>&1 &
  soak_pid=$!
  /usr/bin/python3 -P - "$log" "$scrape_rate" "$secs" <<'PY'
import json, sys, time, urllib.request
log, rate, secs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
addr, deadline = None, time.monotonic() + 30
while addr is None and time.monotonic() < deadline:
    try:
        with open(log) as f:
            first = f.readline()
        addr = json.loads(first).get("metrics_listen") if first.endswith("\n") else None
    except (OSError, ValueError):
        pass
    time.sleep(0.1)
if addr is None or rate <= 0:
    sys.exit(0)
# From the end of warm-up (the 200 agents are spawned and connected) to 3 s
# before the end: the steady state whose CPU the summary reports.
time.sleep(15)
url, lat, render, fails = f"http://{addr}/metrics", [], [], 0
end = time.monotonic() + secs - 15 - 3
for i in range(int(secs * rate)):
    if time.monotonic() > end:
        break
    t0 = time.monotonic()
    try:
        body = urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"}), timeout=2).read()
        lat.append((time.monotonic() - t0) * 1000)
        for line in body.decode().splitlines():
            if line.startswith("sshsoak_metrics_render_seconds{"):
                render.append(float(line.rsplit(" ", 1)[1]) * 1e6)
    except OSError:
        fails += 1
    time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - t0)))
lat.sort()
render.sort()
if lat:
    print(f"  scraper: {len(lat)} scrapes, {fails} failed; round trip p50 {lat[len(lat)//2]:.2f} ms, "
          f"p99 {lat[len(lat)*99//100]:.2f} ms (python client on loopback)")
if render:
    print(f"  the supervisor's own render time per scrape (sshsoak_metrics_render_seconds, wall): "
          f"p50 {render[len(render)//2]:.0f} us, p99 {render[len(render)*99//100]:.0f} us, max {render[-1]:.0f} us")
PY
  wait "$soak_pid" || true
  soak_pid=
  /usr/bin/python3 -P - "$log" "$name" <<'PY'
import json, sys
summary = None
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    if j.get("event") == "summary":
        summary = j
if summary is None:
    print(f"  {sys.argv[2]}: no summary"); sys.exit(0)
sup = summary["resources"].get("supervisor", {})
print(f"  {sys.argv[2]:<16} sessions up {summary['sessions_up_at_end']}/{summary['sessions']}; supervisor CPU "
      f"after warm-up {sup.get('cpu_mean_after_warmup_pct')} %, mean {sup.get('cpu_mean_pct')} %, "
      f"peak RSS {sup.get('rss_peak_kb')} kB")
PY
}

echo "== live: $sessions sessions, ${secs} s each, private sshd =="
one_run no-scraper 0
one_run "scraper-${rate}Hz" "$rate"
