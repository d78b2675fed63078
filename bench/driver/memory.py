"""memory: does an agent's memory stay flat over a run, for each workload
(issue 12 target: slope under 1 MB/h across a 10-minute run).

One sshsoak run per workload, cfg.memory_secs long (the default keeps the
bench short; `--memory-secs 600` is the 10-minute version), read from its
log only: the supervisor's resource_sample lines carry, every
--sample-interval-secs, each agent's RSS and PSS from /proc
(`procs`: [pid, session_id, cpu_pct, rss_kb, pss_kb, fds, threads, cpu_ms]).
The slope is the least-squares line through one agent's samples after the
first third of the run (start-up: libssh2 and OpenSSL allocate once), in
MB per hour; the figure is the worst agent's. A restarted agent is a new
PID, fitted on its own.
"""
from datetime import datetime

from .common import Sshd, log
from .sshsoak_run import SshsoakRun

# Each workload's flags: light enough for a shared 2-core machine, heavy
# enough that a per-connection or per-round leak shows within minutes.
WORKLOADS = {
    "pty": ["--workload", "pty", "--intensity", "high", "--pty-interval-secs", "0.2", "--poll-interval-secs", "1"],
    "churn": ["--workload", "churn", "--churn-rate", "20"],
    "transfer": ["--workload", "transfer", "--transfer-direction", "both", "--transfer-mb", "16"],
}
SESSIONS = {"pty": 4, "churn": 2, "transfer": 2}
# churn at 20/s must not meet sshd's MaxStartups, nor anything but itself.
SSHD_CONFIG = "MaxStartups 200:30:400\nMaxSessions 20\n"


def measure(cfg, env):
    out = {}
    for name in cfg.memory_workloads:
        sshd = Sshd(SSHD_CONFIG)
        try:
            n = SESSIONS[name]
            run = SshsoakRun(cfg.bin, sshd, env.workdir, n, cfg.memory_secs, WORKLOADS[name], tag=f"memory-{name}")
            rc = run.wait_exit(cfg.memory_secs + 90)
            res = slopes(run.events(), cfg.memory_secs)
            res.update({"sessions": n, "secs": cfg.memory_secs, "exit_code": rc, "flags": " ".join(WORKLOADS[name])})
            out[name] = res
            log(f"memory {name}: {res}")
        finally:
            sshd.cleanup()
    return out


def fit(points):
    """Least-squares slope of (t seconds, kB) in MB per hour; None if < 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope_kb_per_s = sum((t - mt) * (v - mv) for t, v in points) / var
    return round(slope_kb_per_s * 3600 / 1024, 3)


def slopes(events, secs):
    samples = [e for e in events if e.get("event") == "resource_sample"]
    if not samples:
        return {"agents": 0, "rss_slope_mb_per_h_max": None}
    t_start = datetime.fromisoformat(samples[0]["ts"]).timestamp()
    warm = secs / 3
    rss, pss, last = {}, {}, {}
    for e in samples:
        t = datetime.fromisoformat(e["ts"]).timestamp() - t_start
        for pid, session_id, _cpu, rss_kb, pss_kb, *_ in e.get("procs", []):
            if session_id is None:
                continue  # the supervisor
            last[pid] = (rss_kb, pss_kb)
            if t >= warm:
                rss.setdefault(pid, []).append((t, rss_kb))
                pss.setdefault(pid, []).append((t, pss_kb))
    rs = {pid: fit(p) for pid, p in rss.items()}
    ps = {pid: fit(p) for pid, p in pss.items()}
    rs_v = [v for v in rs.values() if v is not None]
    ps_v = [v for v in ps.values() if v is not None]
    return {
        "agents": len(last), "samples_fitted": sum(len(p) for p in rss.values()),
        "rss_slope_mb_per_h_max": max(rs_v) if rs_v else None,
        "rss_slope_mb_per_h_min": min(rs_v) if rs_v else None,
        "pss_slope_mb_per_h_max": max(ps_v) if ps_v else None,
        "rss_end_mb_max": round(max(r for r, _ in last.values()) / 1024, 2) if last else None,
        "pss_end_mb_max": round(max(p for _, p in last.values()) / 1024, 2) if last else None,
        "per_agent_rss_slope_mb_per_h": {str(pid): v for pid, v in rs.items()},
    }
