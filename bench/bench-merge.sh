#!/usr/bin/env bash
# Issue 17's merge target: 8 synthetic shard logs of 1 hour each
# (bench/gen-long-log.py --shard I/8) merged by `sshsoak report --merge` in
# under 5 s. Prints the merge's wall time and max RSS beside the reference:
# `sshsoak report` of the same 8 logs read as 8 separate runs (the direct
# path: the same reading, no merge).
#   bench/bench-merge.sh [BUILD_DIR] [--sessions S (per shard, default 25)] [--hours H (default 1)]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
sessions=25
hours=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --sessions) sessions=$2; shift 2 ;;
    --hours) hours=$2; shift 2 ;;
    *) echo "bench-merge.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/shards"
for i in 0 1 2 3 4 5 6 7; do
  /usr/bin/python3 "$root/bench/gen-long-log.py" "$work/shards/shard-$i.jsonl" --hours "$hours" --sessions "$sessions" \
    --shard "$i/8" --run-id bench-merge &
done
wait
echo "8 shard logs: $(cat "$work"/shards/*.jsonl | wc -l) lines, $(du -cm "$work"/shards/*.jsonl | tail -1 | cut -f1) MB" \
  "($sessions sessions x ${hours} h each)"
measure() {
  local what=$1
  shift
  local code=0
  /usr/bin/time -v "$@" >"$work/out.md" 2>"$work/time.txt" || code=$?
  local wall rss cpu
  wall=$(grep "Elapsed (wall clock)" "$work/time.txt" | awk '{print $NF}')
  rss=$(grep "Maximum resident set size" "$work/time.txt" | awk '{print $NF}')
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.2f", s}' "$work/time.txt")
  printf '%-48s wall %s, CPU %s s, max RSS %d MB, exit %d\n' "$what" "$wall" "$cpu" "$((rss / 1024))" "$code"
}
measure "sshsoak report --merge (8 shards)" "$build/bin/sshsoak" report --merge "$work/shards"
measure "sshsoak report --merge (8 shards) --html --hlog" "$build/bin/sshsoak" report --merge "$work/shards" --html "$work/m.html" --hlog "$work/m.hlog"
grep -E "^\| \*\*total" "$work/out.md" || true
measure "sshsoak report (8 runs, no merge) --html" "$build/bin/sshsoak" report "$work"/shards/*.jsonl --html "$work/r.html"
echo "target: the merge in < 5 s"
