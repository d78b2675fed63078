"""storm N: N sessions up, all dropped at once, how long until each is back
and how many sshd turned away (MaxStartups); sshsoak with its token bucket
(default, then burst 8 + 10/s), OpenSSH as N `ssh host true` started at once."""
import signal
import time

from .common import Sshd, log, spawn, ssh_base, stop_pids, target
from .from_binary import percentiles, percentiles_ms
from .sshsoak_run import SshsoakRun


def measure(cfg, env):
    workdir = env.workdir
    out = {}
    for n in cfg.storm_ns:
        sshd = Sshd()  # sshd's default MaxStartups; a fresh log and no leftovers per N
        try:
            out[str(n)] = {"sshsoak": storm_sshsoak(cfg, sshd, workdir, n),
                           "openssh": storm_openssh(cfg, sshd, n),
                           # Burst 8 stays below MaxStartups' 10; 10/s is what
                           # a 2-core loopback sshd takes with no drop.
                           "sshsoak_bucket_8_10": storm_sshsoak(cfg, sshd, workdir, n, 10.0, 8)}
        finally:
            sshd.cleanup()
        log(f"storm N={n}: {out[str(n)]}")
    return out


def storm_sshsoak(cfg, sshd, workdir, n, rate=None, burst=None):
    # Connecting takes tokens too: the drop comes after the ramp, sized at 5/s
    # (half the default --token-rate) to leave a margin.
    at = int(n / (rate or 5.0)) + 6
    extra = ["--drop", str(at)]
    if rate:
        extra += ["--token-rate", str(rate), "--token-burst", str(burst)]
    run = SshsoakRun(cfg.bin, sshd, workdir, n, at + 60, extra, tag=f"storm-{n}-{rate}")
    if not run.wait_for("connected", n, at + 5):
        log(f"storm N={n}: only {run.count('connected')} connected before the drop")
    off = sshd.log_size()
    run.wait_for("disconnect_injected", 1, 30)
    t_drop = time.monotonic()
    ok = run.wait_for("reconnected", n, 45)
    took = time.monotonic() - t_drop
    run.stop()
    ev = run.events()
    rec = [e for e in ev if e.get("event") == "reconnected"]
    firsts = {}
    for e in rec:
        firsts.setdefault(e["session_id"], e["elapsed_ms"])
    p50, p95, pmax = percentiles(cfg.bin, firsts.values(), 0.5, 0.95, 1.0)
    summary = next((e for e in ev if e.get("event") == "summary"), {})
    return {"back": len(firsts), "failed": n - len(firsts), "all_back": ok,
            "p50_ms": p50, "p95_ms": p95, "max_ms": pmax,
            "observed_all_back_s": round(took, 2) if ok else None,
            "reconnect_failed_events": sum(1 for e in ev if e.get("event") == "reconnect_failed"),
            "abnormal_ends": summary.get("abnormal_ends"), **sshd.drops_since(off)}


def storm_openssh(cfg, sshd, n):
    base = ssh_base(sshd, ["-o", "ConnectTimeout=15"])
    # Established first, paced (not part of the measurement).
    idle = []
    off = sshd.log_size()
    for i in range(n):
        idle.append(spawn(base + ["-N", "-o", "ServerAliveInterval=15", target(sshd)]))
        if (i + 1) % 5 == 0:
            time.sleep(0.5)
    deadline = time.monotonic() + 60
    while sshd.accepted_since(off) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    off = sshd.log_size()
    stop_pids(idle, sig=signal.SIGKILL)  # the drop
    t0 = time.monotonic()
    procs = [spawn(base + [target(sshd), "true"]) for _ in range(n)]
    times, fails = [], 0
    remaining = list(procs)
    while remaining:
        for p in list(remaining):
            if p.poll() is not None:
                remaining.remove(p)
                if p.returncode == 0:
                    times.append((time.monotonic() - t0) * 1000)
                else:
                    fails += 1
        if time.monotonic() - t0 > 60:
            stop_pids(remaining, sig=signal.SIGKILL)
            fails += len(remaining)
            break
        time.sleep(0.005)
    p50, p95, pmax = percentiles_ms(cfg.bin, times, 0.5, 0.95, 1.0)
    return {"back": len(times), "failed": fails, "all_back": fails == 0,
            "p50_ms": p50, "p95_ms": p95, "max_ms": pmax, **sshd.drops_since(off)}
