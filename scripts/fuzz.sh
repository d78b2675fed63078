#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/fuzzing.md) with clang into
# build-fuzz/ and runs each for a bounded time, one after another. Fails,
# naming the input, when a target finds a crash, a sanitizer report, a leak,
# a timeout or an out-of-memory; the input is also copied to
# fuzz/regressions/<target>/ for the developer to fix and commit (the unit
# test fuzz_replay_tests replays it from then on, in every build).
#   scripts/fuzz.sh [TARGET ...]      all targets when none is named
# Environment:
#   SSHSOAK_FUZZ_SECS   seconds per target (default 30; scripts/test.sh passes its own)
#   SSHSOAK_FUZZ_DIR    the build directory (default build-fuzz/)
# New inputs that widen coverage stay in build-fuzz/corpus/<target>/ between
# runs; copy the useful ones to fuzz/corpus/<target>/ to keep them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${SSHSOAK_FUZZ_DIR:-$root/build-fuzz}
secs=${SSHSOAK_FUZZ_SECS:-30}
all=(frame_events agent_frames report cli drop_spec fault_cmd jobs_file fault_spec)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all[@]}")

"$root/scripts/setup.sh"
# setup.sh installs both; a machine set up otherwise gets told what is missing.
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ is missing: scripts/setup.sh installs it (Debian packages clang, libclang-rt-14-dev)" >&2
  exit 1
fi
if [[ -z $(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a | grep /) ||
      ! -e $(clang++ -print-file-name=libclang_rt.fuzzer-x86_64.a) ]]; then
  echo "fuzz.sh: clang's libFuzzer runtime is missing: install libclang-rt-14-dev (scripts/setup.sh does)" >&2
  exit 1
fi
started=$SECONDS
# -O1 -g1: libFuzzer's usual optimisation; line tables name file:line in reports.
# Unity-built libraries, as in test.sh's builds: each is built from clean in CI.
cmake -S "$root" -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DSSHSOAK_FUZZ=ON -DSSHSOAK_UNITY=ON \
  -DSSHSOAK_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" >/dev/null
log=$(mktemp)
if ! cmake --build "$dir" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >"$log" 2>&1; then
  cat "$log" >&2; rm -f "$log"; echo "fuzz.sh: the fuzz build in $dir failed" >&2; exit 1
fi
rm -f "$log"
echo "fuzz.sh: built in $((SECONDS - started)) s; ${secs} s per target"

failed=()
for t in "${targets[@]}"; do
  work=$dir/corpus/$t
  artifacts=$dir/artifacts/$t/
  mkdir -p "$work" "$artifacts" "$root/fuzz/corpus/$t"
  rm -f "$artifacts"*
  flags=(-max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
         -artifact_prefix="$artifacts")
  [[ -f $root/fuzz/dict/$t.dict ]] && flags+=(-dict="$root/fuzz/dict/$t.dict")
  dirs=("$work" "$root/fuzz/corpus/$t")
  [[ -d $root/fuzz/regressions/$t ]] && dirs+=("$root/fuzz/regressions/$t")
  out=$dir/fuzz-$t.log
  rc=0
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$dir/bin/fuzz_$t" "${flags[@]}" "${dirs[@]}" >"$out" 2>&1 || rc=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$out" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"${done_line:-$(grep -E '^#[0-9]+' "$out" | tail -1)}" || true)
  printf 'fuzz.sh: %-13s %s execs, %s/s, %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-cov ?}"
  if [[ $rc -ne 0 ]]; then
    tail -40 "$out" >&2
    mkdir -p "$root/fuzz/regressions/$t"
    found=0
    for f in "$artifacts"*; do
      [[ -f $f ]] || continue
      found=1
      cp "$f" "$root/fuzz/regressions/$t/"
      echo "fuzz.sh: $t found a bug; input: $f (copied to fuzz/regressions/$t/$(basename "$f"); fix it, then commit the input)" >&2
    done
    [[ $found -eq 1 ]] || echo "fuzz.sh: $t exited $rc without an input; the log is $out" >&2
    failed+=("$t")
  fi
done
echo "fuzz.sh: done in $((SECONDS - started)) s"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
