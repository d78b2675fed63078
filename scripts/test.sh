#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, builds with
# warnings as errors, runs every test under ctest, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite there too,
# and the unit tests (the only threaded code) under ThreadSanitizer.
#   scripts/test.sh            everything
#   scripts/test.sh --quick    the plain build only
# Integration tests need root (sshd, network namespaces, iptables); without
# it they fail with a message saying so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
quick=0
[[ ${1:-} == --quick ]] && quick=1

echo "== build (warnings as errors)"
"$root/scripts/build.sh" "$root/build" -DSSHSOAK_WERROR=ON
echo "== tests"
(cd "$root/build" && ctest --output-on-failure --timeout 600)

if [[ $quick -eq 0 ]]; then
  echo "== build with ASan + UBSan"
  "$root/scripts/build.sh" "$root/build-asan" -DSSHSOAK_SANITIZE=ON -DSSHSOAK_WERROR=ON -DCMAKE_BUILD_TYPE=Debug
  echo "== tests under ASan + UBSan"
  (cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --timeout 600)

  # Threads exist only where processes share the token bucket's atomic (its
  # unit tests hammer it from threads and processes); sshsoak and
  # sshsoak-agent run one event loop on one thread each. So ThreadSanitizer
  # runs the unit tests.
  echo "== unit tests under TSan"
  "$root/scripts/setup.sh"
  cmake -S "$root" -B "$root/build-tsan" -DSSHSOAK_TSAN=ON -DSSHSOAK_WERROR=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
  log=$(mktemp)
  if ! cmake --build "$root/build-tsan" -j"$(nproc)" --target unit_tests >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; echo "test.sh: the TSan build failed" >&2; exit 1
  fi
  rm -f "$log"
  (cd "$root/build-tsan" && TSAN_OPTIONS=halt_on_error=1 ctest -L unit --output-on-failure --timeout 600)
fi
