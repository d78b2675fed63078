"""Reconnect storms, side by side (issue 16; scripts/bench-storm.sh,
docs/benchmarks.md "Issue 16", "Reconnect storms").

For each N, against a fresh private sshd with OpenSSH's default config
(MaxStartups 10:30:100) per column:
  - sshsoak --reconnect-pacing adaptive
  - sshsoak --reconnect-pacing fixed (the token bucket at --token-rate 10, burst 8)
  - plain OpenSSH clients in an autossh-style loop: `ssh -N` with
    ServerAliveInterval in a bounded bash loop, a full-jitter backoff between
    attempts (0..min(2 s, 0.1 s x 2^k)); the drop SIGKILLs every ssh at once,
    the loops reconnect. `LocalCommand` stamps the time each connection is up.
All N sessions are dropped at once; measured: how many came back, the time
until the last is back, p50/p95 of the per-session time back, and the
connections sshd dropped past MaxStartups ("drop connection" in its log).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from .common import Sshd, log, spawn, ssh_base, stop_pids, target
from .from_binary import percentiles
from .sshsoak_run import SshsoakRun


def storm_sshsoak(bin_dir, sshd, workdir, n, pacing, back_secs):
    # The first connects are paced too; the drop comes once they are done
    # at the fixed rate (10/s) with a margin.
    at = int(n / 8) + 6
    extra = ["--drop", str(at), "--reconnect-pacing", pacing, "--keepalive-interval-secs", "30",
             "--pty-interval-secs", "5", "--max-reconnect-attempts", "1000"]
    run = SshsoakRun(bin_dir, sshd, workdir, n, at + back_secs + 30, extra, tag=f"storm-{n}-{pacing}")
    try:
        if not run.wait_for("connected", n, at + 5):
            log(f"storm N={n} {pacing}: only {run.count('connected')} connected before the drop")
        off = sshd.log_size()
        run.wait_for("disconnect_injected", 1, at + 30)
        all_back = run.wait_for("reconnected", n, back_secs)
    finally:
        run.stop()
    ev = run.events()
    firsts = {}
    for e in ev:
        if e.get("event") == "reconnected":
            firsts.setdefault(e["session_id"], e["elapsed_ms"])
    p50, p95, pmax = percentiles(bin_dir, firsts.values(), 0.5, 0.95, 1.0)
    refused = sum(1 for e in ev if e.get("event") == "reconnect_failed" and "MaxStartups" in json.dumps(e))
    rates = [e["rate_per_sec"] for e in ev if e.get("event") == "pacer_rate"]
    return {"back": len(firsts), "failed": n - len(firsts), "all_back": all_back,
            "p50_ms": p50, "p95_ms": p95, "max_ms": pmax,
            "reconnect_failed": sum(1 for e in ev if e.get("event") == "reconnect_failed"),
            "agent_maxstartups_failures": refused,
            "pacer_lines": len(rates), "pacer_max_rate": max(rates) if rates else None,
            "pacer_min_rate": min(rates) if rates else None,
            **sshd.drops_since(off)}


LOOP = r'''
stamp=$1; shift
for k in $(seq 0 200); do
  "$@" || true
  c=$(awk -v k="$k" 'BEGIN { c = 0.1 * 2 ^ (k < 5 ? k : 5); if (c > 2) c = 2; print c }')
  sleep "$(awk -v c="$c" -v r="$RANDOM" 'BEGIN { printf "%.3f", c * r / 32768 }')"
done
'''


def storm_openssh_loop(sshd, workdir, n, back_secs):
    stamps = tempfile.mkdtemp(prefix="storm-loop-", dir=workdir)
    loops = []
    try:
        for i in range(n):
            f = f"{stamps}/{i}"
            argv = ssh_base(sshd, ["-N", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                                   "-o", "ConnectTimeout=15", "-o", "PermitLocalCommand=yes",
                                   "-o", f"LocalCommand=date +%%s.%%N >> {f}", target(sshd)])
            loops.append(spawn(["bash", "-c", LOOP, "loop", f, *argv], start_new_session=True))
            if (i + 1) % 5 == 0:
                time.sleep(0.3)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(os.path.exists(f"{stamps}/{i}") for i in range(n)) < n:
            time.sleep(0.2)
        time.sleep(2)
        off = sshd.log_size()
        # The drop: every ssh (the loops' children) killed at once, by PID.
        kids = []
        for p in loops:
            try:
                with open(f"/proc/{p.pid}/task/{p.pid}/children") as c:
                    kids += [int(x) for x in c.read().split()]
            except OSError:
                pass
        t_drop = time.time()
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        times = {}
        deadline = time.monotonic() + back_secs
        while time.monotonic() < deadline and len(times) < n:
            for i in range(n):
                if i in times:
                    continue
                try:
                    with open(f"{stamps}/{i}") as fh:
                        after = [float(x) for x in fh.read().split() if float(x) > t_drop]
                except (OSError, ValueError):
                    continue
                if after:
                    times[i] = (after[0] - t_drop) * 1000
            time.sleep(0.05)
        p50, p95, pmax = percentiles(sshd_bin_dir(), [round(t) for t in times.values()], 0.5, 0.95, 1.0)
        return {"back": len(times), "failed": n - len(times), "all_back": len(times) == n,
                "p50_ms": p50, "p95_ms": p95, "max_ms": pmax, **sshd.drops_since(off)}
    finally:
        # The loops first (their process groups: bash and its ssh), by PID.
        for p in loops:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stop_pids(loops, sig=signal.SIGKILL)


_BIN = {}


def sshd_bin_dir():
    return _BIN["dir"]


def fmt(v):
    return "-" if v is None else str(v)


def print_table(results):
    cols = ["adaptive", "fixed", "openssh_loop"]
    print(f"{'N':>5} {'figure':<26}" + "".join(f"{c:>22}" for c in cols))
    for n, r in results.items():
        rows = [("back / N", lambda x: f"{x['back']}/{n}"),
                ("last back ms", lambda x: fmt(x["max_ms"])),
                ("p50 / p95 ms", lambda x: f"{fmt(x['p50_ms'])} / {fmt(x['p95_ms'])}"),
                ("MaxStartups drops (sshd)", lambda x: str(x["drop_connection"])),
                ("pacer rate min..max /s", lambda x: f"{fmt(x.get('pacer_min_rate'))}..{fmt(x.get('pacer_max_rate'))}"
                 if "pacer_lines" in x else "")]
        for name, f in rows:
            print(f"{n:>5} {name:<26}" + "".join(f"{f(r[c]) if c in r else 'skipped':>22}" for c in cols))
        print(f"{n:>5} {'load avg (1 min) at end':<26}{r['loadavg']:>22}")


def main():
    ap = argparse.ArgumentParser(prog="bench-storm.sh")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--ns", default="100")
    ap.add_argument("--only", default="adaptive,fixed,openssh_loop")
    ap.add_argument("--back-secs", type=int, default=90, help="how long to wait for all to be back")
    ap.add_argument("--out", default="bench-storm-results.json")
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    _BIN["dir"] = a.bin
    workdir = a.workdir or tempfile.mkdtemp(prefix="sshsoak-bench-storm-")
    os.makedirs(workdir, exist_ok=True)
    only = a.only.split(",")
    results = {}
    for n in [int(x) for x in a.ns.split(",")]:
        r = {}
        for mode in only:
            sshd = Sshd()  # OpenSSH's defaults: MaxStartups 10:30:100
            try:
                if mode == "openssh_loop":
                    r[mode] = storm_openssh_loop(sshd, workdir, n, a.back_secs)
                else:
                    r[mode] = storm_sshsoak(a.bin, sshd, workdir, n, mode, a.back_secs)
            finally:
                sshd.cleanup()
            log(f"storm N={n} {mode}: {r[mode]}")
        r["loadavg"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
        results[str(n)] = r
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print_table(results)
    print(f"JSON: {a.out}; logs in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
