#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, builds with
# warnings as errors, runs every test under ctest, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite there too,
# the unit tests (the only threaded code) under ThreadSanitizer, and the
# libFuzzer targets for SSHSOAK_FUZZ_SECS seconds each (scripts/fuzz.sh).
#   scripts/test.sh            everything
#   scripts/test.sh --quick    the plain build only
# Integration tests need root (sshd, network namespaces, iptables); without
# it they fail with a message saying so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
[[ ${1:-} == --quick ]] && quick=1
# Integration tests spend their time waiting on timers and their own sshd,
# so they run SSHSOAK_TEST_JOBS at a time (3 on CI's 2 cores); those that
# measure CPU or timing are RUN_SERIAL in tests/CMakeLists.txt and run alone.
# The unit tests run first and on their own: some hammer both cores, and
# one makes a /dev/shm name that an integration test's teardown would count.
test_jobs=${SSHSOAK_TEST_JOBS:-3}
# The sanitizer builds keep line tables only (-g1, not -g): their reports'
# stack traces still name file:line, and each file compiles ~7 % faster.
sanitizer_debug=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1)
# ctest_all DIR EXCLUDE [env...]: unit tests, then every other test whose
# labels do not match EXCLUDE (a ctest -LE regex).
ctest_all() {
  (cd "$1" && local exclude=$2 && shift 2 && env "$@" ctest -L unit -j2 --output-on-failure --timeout 600 &&
     env "$@" ctest -LE "$exclude" -j"$test_jobs" --output-on-failure --timeout 600)
}

echo "== build (warnings as errors)"
"$root/scripts/build.sh" "$root/build" -DSSHSOAK_WERROR=ON -DSSHSOAK_UNITY=ON
echo "== deploy manifests and Containerfile (issue 17)"
"$root/scripts/check-deploy.sh"
echo "== tests"
ctest_all "$root/build" "^unit$"

if [[ $quick -eq 0 ]]; then
  echo "== build with ASan + UBSan"
  "$root/scripts/build.sh" "$root/build-asan" -DSSHSOAK_SANITIZE=ON -DSSHSOAK_WERROR=ON -DSSHSOAK_UNITY=ON "${sanitizer_debug[@]}"
  # Not the `timing` tests (tests/CMakeLists.txt): their point is a figure of
  # time or CPU, which under ASan is ASan's; their code runs in other tests.
  echo "== tests under ASan + UBSan"
  ctest_all "$root/build-asan" "^(unit|timing)$" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

  # Threads exist only where processes share the token bucket's atomic (its
  # unit tests hammer it from threads and processes) and in the supervisor's
  # /proc sampler (a thread beside the loop, sampler_thread_test); sshsoak
  # and sshsoak-agent otherwise run one event loop on one thread each. So
  # ThreadSanitizer builds and runs those tests (tests/CMakeLists.txt,
  # thread_tests). The agent's name resolution (getaddrinfo_a) finishes on a
  # thread glibc starts itself, which TSan cannot follow: its tests
  # (resolver_tests) run in the two builds above.
  echo "== thread tests under TSan"
  "$root/scripts/setup.sh"
  cmake -S "$root" -B "$root/build-tsan" -DSSHSOAK_TSAN=ON -DSSHSOAK_WERROR=ON "${sanitizer_debug[@]}" >/dev/null
  log=$(mktemp)
  if ! cmake --build "$root/build-tsan" -j"$(nproc)" --target thread_tests >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "test.sh: the TSan build failed" >&2; exit 1
  fi
  rm -f "$log"
  (cd "$root/build-tsan" && TSAN_OPTIONS=halt_on_error=1 ctest -L unit --output-on-failure --timeout 600)

  # libFuzzer targets (docs/fuzzing.md), a bounded time each; a crash input
  # is named and copied to fuzz/regressions/ to be fixed and committed.
  # 15 s each in CI (7 targets): bounded, and CI stays near its budget; a
  # developer runs scripts/fuzz.sh longer (30 s each by default, or more).
  export SSHSOAK_FUZZ_SECS=${SSHSOAK_FUZZ_SECS:-15}
  echo "== fuzzing (${SSHSOAK_FUZZ_SECS} s per target)"
  fuzz_started=$SECONDS
  "$root/scripts/fuzz.sh"
  echo "== fuzzing took $((SECONDS - fuzz_started)) s"
fi
