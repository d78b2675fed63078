#!/usr/bin/env bash
# The report's speed and memory on a long run: generates a synthetic 24-hour
# 10-session log in the issue-14 format (bench/gen-long-log.py) and prints
# what `sshsoak report --html` costs on it (wall time, max RSS), against the
# target (< 2 s, < 200 MB).
#   bench/bench-report.sh [BUILD_DIR] [--hours H] [--sessions N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$root/bench/gen-long-log.py" "$work/run.jsonl" --leak-agent 3 "$@"
echo "log: $(wc -l <"$work/run.jsonl") lines, $(du -m "$work/run.jsonl" | cut -f1) MB"
/usr/bin/time -v "$build/bin/sshsoak" report "$work/run.jsonl" --html "$work/run.html" >"$work/table.md" 2>"$work/time.txt"
wall=$(grep "Elapsed (wall clock)" "$work/time.txt" | awk '{print $NF}')
rss=$(grep "Maximum resident set size" "$work/time.txt" | awk '{print $NF}')
echo "sshsoak report --html: wall $wall, max RSS $((rss / 1024)) MB (target: < 2 s, < 200 MB); HTML $(du -k "$work/run.html" | cut -f1) kB"
grep -E "^\| bench" "$work/table.md" || true
