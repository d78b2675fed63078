#!/usr/bin/env bash
# Installs every build, run and test dependency of sshsoak from Debian's
# archive. Idempotent: when everything is present it prints nothing and
# touches nothing. Safe on a fresh Debian 12 (bookworm) machine.
set -euo pipefail

PACKAGES=(
  # build
  g++ cmake make pkg-config
  # libraries (see CMakeLists.txt for why each is there)
  libssh2-1-dev libssl-dev libboost-dev libboost-filesystem-dev libboost-system-dev
  capnproto libcapnp-dev libspdlog-dev libfmt-dev
  nlohmann-json3-dev libcli11-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  openssh-server openssh-client iptables iproute2 procps util-linux
  # the relay bench's reference relay (bench/relay_cost.py)
  socat
  # a real server libssh2 1.10 cannot agree with (chacha20-poly1305 only): the algorithms test
  tinysshd
  # the HTML report is checked in a real headless browser
  chromium
  # fuzzing (scripts/fuzz.sh): clang and its libFuzzer runtime
  clang libclang-rt-14-dev
  # issue 17: --junit files are read back by a real JUnit reader; xmllint checks them against tests/data/junit.xsd
  python3-junitparser libxml2-utils
  # --metrics-listen is checked with promtool and scraped by a real Prometheus server (issue 17)
  prometheus
  # issue 17: the summary's histograms and --hlog are HdrHistogram's compressed (zlib) encoding
  zlib1g-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
# issue 17: scripts/check-deploy.sh validates deploy/ with npm packages. A
# machine with its own Node.js (NodeSource's bundles npm) keeps it.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: missing packages: ${missing[*]}" >&2
  echo "setup.sh: run as root (or: sudo $0) to install them" >&2
  exit 1
fi

echo "setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Installing openssh-server must not leave a system sshd running that nobody
# asked for: policy-rc.d 101 tells invoke-rc.d not to start services during
# this install. Only put one in place if the machine has none of its own.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=1
fi
trap '[[ $own_policy -eq 1 ]] && rm -f "$policy"' EXIT

# Refresh the package lists only when they are missing or older than a day.
if [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1) ]]; then
  apt-get update -qq >/dev/null
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup.sh: done"
