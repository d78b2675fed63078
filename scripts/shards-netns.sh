#!/usr/bin/env bash
# N shards of one sshsoak run as separate processes, each in a network
# namespace of its own joined to the sshd's namespace by a veth pair (a
# stand-in for N machines: each shard connects from its own address), then
# one merged table, verdict, HTML and .hlog (`sshsoak report --merge`).
#
#   scripts/shards-netns.sh [N=4] [DURATION_SECS=20] [SESSIONS_PER_SHARD=2]
#
# Environment: SSHSOAK_BIN (default build/bin/sshsoak); OUT, a directory to
# keep the shard logs, merged.html and merged.hlog in (default: a temp dir,
# removed at exit). Needs root (ip netns). Bounded: each shard runs for
# DURATION_SECS and is SIGKILLed 60 s after that at the latest; the
# namespaces (and with them the veths and the bridge), the sshd and the temp
# files are removed on any exit (trap). Exit code: the merge's (0 pass, 1 a
# criterion failed or a shard did not finish, 3 unreadable logs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-4}
dur=${2:-20}
per=${3:-2}
bin=${SSHSOAK_BIN:-$root/build/bin/sshsoak}
[[ $n =~ ^[1-9][0-9]?$ ]] || { echo "shards-netns.sh: N must be 1-99, not '$n'" >&2; exit 2; }
[[ $dur =~ ^[1-9][0-9]*$ ]] || { echo "shards-netns.sh: DURATION_SECS must be a whole number of seconds" >&2; exit 2; }
[[ -x $bin ]] || { echo "shards-netns.sh: $bin is not executable (build it: scripts/build.sh, or set SSHSOAK_BIN)" >&2; exit 2; }
[[ $(id -u) -eq 0 ]] || { echo "shards-netns.sh: needs root for ip netns" >&2; exit 2; }

tag=ssk$$            # interface names stay under 15 characters
srv=${tag}s
work=$(mktemp -d /tmp/sshsoak-shards-XXXXXX)
out=${OUT:-$work/logs}
mkdir -p "$out"
port=2222
net=10.217.0
shard_pids=()
sshd_pid=

cleanup() {
  local rc=$?
  for p in "${shard_pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [[ -n $sshd_pid ]] && kill "$sshd_pid" 2>/dev/null || true
  for ((i = 0; i < n; i++)); do ip netns del "${tag}c$i" 2>/dev/null || true; done
  ip netns del "$srv" 2>/dev/null || true
  for ((i = 0; i < n; i++)); do ip link del "${tag}h$i" 2>/dev/null || true; done
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
# The server's namespace: a bridge at $net.1 that every shard's veth joins.
ip netns add "$srv"
ip -n "$srv" link set lo up
ip -n "$srv" link add br0 type bridge
ip -n "$srv" addr add "$net.1/24" dev br0
ip -n "$srv" link set br0 up
for ((i = 0; i < n; i++)); do
  ns=${tag}c$i
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "${tag}h$i" type veth peer name "${tag}p$i"
  ip link set "${tag}h$i" netns "$srv"
  ip link set "${tag}p$i" netns "$ns"
  ip -n "$srv" link set "${tag}h$i" master br0 up
  ip -n "$ns" addr add "$net.$((10 + i))/24" dev "${tag}p$i"
  ip -n "$ns" link set "${tag}p$i" up
done

# A throwaway OpenSSH sshd in the server's namespace (the same settings as
# sshsoak's embedded one: supervisor/run/local_sshd.cpp).
user=$(id -un)
ssh-keygen -q -t ed25519 -N '' -f "$work/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -f "$work/id_ed25519"
cp "$work/id_ed25519.pub" "$work/authorized_keys"
echo "[$net.1]:$port $(cut -d' ' -f1,2 "$work/host_ed25519.pub")" >"$work/known_hosts"
cat >"$work/sshd_config" <<CONF
Port $port
ListenAddress $net.1
HostKey $work/host_ed25519
PidFile $work/sshd.pid
AuthorizedKeysFile $work/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowUsers $user
SetEnv SHLVL=1
MaxStartups 100:30:200
CONF
ip netns exec "$srv" /usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
sshd_pid=$!
for _ in $(seq 50); do
  ip netns exec "${tag}c0" bash -c "exec 3<>/dev/tcp/$net.1/$port" 2>/dev/null && break
  sleep 0.1
done

run_id=netns-$(date -u +%Y%m%dT%H%M%SZ)-$$
sessions=$((n * per))
echo "shards-netns.sh: $n shards x $per sessions for $dur s against $net.1:$port (run $run_id)" >&2
for ((i = 0; i < n; i++)); do
  ip netns exec "${tag}c$i" "$bin" --targets "$net.1:$port" --user "$user" --key "$work/id_ed25519" \
    --known-hosts "$work/known_hosts" --sessions "$sessions" --shard "$i/$n" --run-id "$run_id" \
    --duration-secs "$dur" --drop "$((dur / 3))" --log-path "$out/shard-$i.jsonl" \
    --max-cpu-pct 50 >"$work/shard-$i.out" 2>&1 &
  shard_pids+=($!)
done
deadline=$((SECONDS + dur + 60))
for ((i = 0; i < n; i++)); do
  while kill -0 "${shard_pids[$i]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "${shard_pids[$i]}" 2>/dev/null; then
    echo "shards-netns.sh: shard $i still running 60 s after its duration: killed" >&2
    kill -9 "${shard_pids[$i]}" 2>/dev/null || true
  fi
  wait "${shard_pids[$i]}" && code=0 || code=$?
  echo "shards-netns.sh: shard $i/$n exited $code (from $net.$((10 + i)))" >&2
done
shard_pids=()

# Each shard connected from its own address: the sshd saw them all.
sources=$(grep -o "from $net\.[0-9]*" "$work/sshd.log" | sort -u | wc -l)
echo "shards-netns.sh: the sshd saw connections from $sources distinct shard addresses" >&2

code=0
"$bin" report --merge "$out" --html "$out/merged.html" --hlog "$out/merged.hlog" || code=$?
echo "shards-netns.sh: merged in $out (exit $code); took $(($(date +%s) - start)) s" >&2
((sources == n)) || { echo "shards-netns.sh: expected $n source addresses, saw $sources" >&2; code=1; }
exit "$code"
