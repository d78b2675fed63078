#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, builds with
# warnings as errors, runs every test under ctest, then builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite there too.
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
  # Both programs are single-threaded (one event loop each), so there is no
  # data race for ThreadSanitizer to find; ASan+UBSan cover the rest.
  echo "== build with ASan + UBSan"
  "$root/scripts/build.sh" "$root/build-asan" -DSSHSOAK_SANITIZE=ON -DSSHSOAK_WERROR=ON -DCMAKE_BUILD_TYPE=Debug
  echo "== tests under ASan + UBSan"
  (cd "$root/build-asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure --timeout 600)
fi
