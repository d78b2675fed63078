"""churn: connections back to back, sshsoak's `--workload churn` against
OpenSSH's `ssh -o ControlMaster=no host true` in C parallel loops, and a
sustained open-loop run at a fixed rate (issue 12).

- max C: both sides as fast as the server takes them at the same
  concurrency C (sshsoak `--churn-rate 0 --sessions C`: each agent starts
  its next connection when the last one closed; OpenSSH: C threads, each
  running `ssh ... true` to its end and the next at once). Per side over
  the same window: achieved connections/s, client CPU per connection, p99,
  and the CPU of sshd (its whole tree: per-connection children are reaped
  by the listener, so their CPU is in its cutime) and of the machine
  (/proc/stat), to say which side saturates it.
- sustained: sshsoak `--churn-rate R --sessions C` for the whole window
  (target: >= 100/s for 60 s with 0 failures, or sshd saturating the cores
  while our client spends <= 2 ms CPU per connection).

sshsoak's figures come from its log only: churn_stats lines (per agent,
every --churn-report-secs: attempted, succeeded, failed, cpu_ms,
latency_us histograms, failures by kind; supervisor/log_line.cpp), merged
exactly (hdr.py). Its client CPU is given twice: what the agents report
(cpu_ms, their own getrusage) and the whole tree from /proc (supervisor +
agents), the way every other case measures a side.
"""
import resource
import threading
import time
from datetime import datetime

from . import hdr
from .common import MachineCpu, Side, Sshd, Window, log, run_timed, ssh_base, target
from .from_binary import percentiles_ms
from .sshsoak_run import SshsoakRun

# Connections in flight are at most C per side; the listener must not be
# what is measured (sshd's default MaxStartups 10:30:100 drops from 10).
# SetEnv SHLVL=1 in the bench sshd keeps root's pyenv out of `true`.
CHURN_SSHD_CONFIG = "MaxStartups 200:30:400\nMaxSessions 20\n"


def measure(cfg, env):
    out = {"max": {}, "sustained": None}
    sshd = Sshd(CHURN_SSHD_CONFIG)
    try:
        for c in cfg.churn_cs:
            out["max"][str(c)] = {"sshsoak": churn_sshsoak(cfg, sshd, env.workdir, c, 0, cfg.churn_window),
                                  "openssh": churn_openssh(cfg, sshd, c, cfg.churn_window)}
            log(f"churn max C={c}: {out['max'][str(c)]}")
        r, c = cfg.churn_sustained
        out["sustained"] = churn_sshsoak(cfg, sshd, env.workdir, c, r, cfg.churn_sustained_secs)
        log(f"churn sustained {r}/s C={c}: {out['sustained']}")
    finally:
        sshd.cleanup()
    return out


def ts_of(e):
    return datetime.fromisoformat(e["ts"]).timestamp()


def churn_sshsoak(cfg, sshd, workdir, c, rate, window):
    """sshsoak --workload churn, C agents, the target rate (0: unpaced);
    measured over `window` seconds once every agent has reported once."""
    extra = ["--workload", "churn", "--churn-rate", str(rate), "--churn-report-secs", "1"]
    run = SshsoakRun(cfg.bin, sshd, workdir, c, window + 15, extra, tag=f"churn-{c}-{rate}")
    sshd_side = Side([sshd.proc.pid])
    if not run.wait_for("churn_stats", c, 30):
        run.stop()
        raise RuntimeError(f"churn C={c}: fewer than {c} churn_stats lines in 30 s; see {run.log_path}")
    w0 = time.time()
    with Window(run.side, sample_secs=5.0, focus=run.proc.pid) as w, Window(sshd_side, sample_secs=5.0) as ws, \
            MachineCpu() as m:
        time.sleep(window)
    w1 = time.time()
    rc = run.stop()  # SIGTERM: the agents finish, the summary is written
    ev = run.events()
    res = churn_figures([e for e in ev if e.get("event") == "churn_stats" and w0 < ts_of(e) <= w1])
    tree = w.result()
    res.update({
        "sessions": c, "target_per_s": rate, "window_s": tree["secs"], "exit_code": rc,
        "client_cpu_pct": tree["cpu_pct"], "supervisor_cpu_pct": tree.get("focus_cpu_pct"),
        # Over the window, per connection attempted (failed ones cost too).
        "client_tree_cpu_ms_per_conn": per_conn(tree["cpu_pct"] * 10 * tree["secs"], res["attempted"]),
        "sshd_cpu_pct": ws.result()["cpu_pct"], "machine_busy_cores": m.busy_cores(),
        "client_pss_mb": tree["pss_mb"],
        "run_failed": sum(e.get("failed", 0) for e in ev if e.get("event") == "churn_stats"),
        "run_succeeded": sum(e.get("succeeded", 0) for e in ev if e.get("event") == "churn_stats"),
    })
    res["sshd_cpu_ms_per_conn"] = per_conn(res["sshd_cpu_pct"] * 10 * tree["secs"], res["attempted"])
    res["saturation"] = saturation(cfg, res["machine_busy_cores"], res["sshd_cpu_pct"], res["client_cpu_pct"])
    return res


def churn_figures(lines):
    """The window's churn_stats lines -> rate, CPU per connection,
    latency percentiles (ms) of the merged histograms, failures by kind."""
    per_agent = {}
    for e in lines:
        a = per_agent.setdefault(e["session_id"], {"ok": 0, "ms": 0})
        a["ok"] += e["succeeded"]
        a["ms"] += e["interval_ms"]
    attempted = sum(e["attempted"] for e in lines)
    succeeded = sum(e["succeeded"] for e in lines)
    failed = sum(e["failed"] for e in lines)
    cpu_ms = sum(e.get("cpu_ms", 0) for e in lines)
    failures = {}
    for e in lines:
        for kind, f in e.get("failures", {}).items():
            x = failures.setdefault(kind, {"count": 0, "example": f.get("example", "")})
            x["count"] += f["count"]
    latency = {}
    names = sorted({n for e in lines for n in e.get("latency_us", {})})
    for name in names:
        latency[name] = hdr.merge(e["latency_us"][name] for e in lines if name in e.get("latency_us", {})) \
            .figures(scale=1000.0)
    return {
        # Each agent's own rate over the intervals it reported, summed:
        # exact whatever the intervals' phase against the window.
        "conn_per_s": round(sum(a["ok"] * 1000.0 / a["ms"] for a in per_agent.values() if a["ms"] > 0), 1),
        "agents_reporting": len(per_agent),
        "attempted": attempted, "succeeded": succeeded, "failed": failed, "failures": failures,
        "agent_cpu_ms_per_conn": per_conn(cpu_ms, attempted),
        "behind_ms_max": max((e.get("behind_ms", 0) for e in lines), default=None),
        "latency_ms": latency,
    }


def per_conn(ms, n):
    return round(ms / n, 3) if n else None


def saturation(cfg, busy_cores, sshd_pct, client_pct, driver_pct=0.0):
    """Who used the machine: "saturated by sshd (sshd 1.60 cores, client
    0.20, other 0.15, machine 1.95/2)" once it is >= 90 % busy, else "not
    saturated (...)". "other" is everything else running meanwhile (on a
    shared machine, other people's builds): it is named when it is the
    largest share, so a busy neighbour is not blamed on sshd."""
    nproc = cfg.nproc
    shares = {"sshd": sshd_pct / 100, "client": client_pct / 100}
    if driver_pct:
        shares["driver"] = driver_pct / 100  # this script starting the OpenSSH clients
    shares["other"] = max(0.0, busy_cores - sum(shares.values()))
    who = ", ".join(f"{k} {v:.2f}" for k, v in shares.items()) + f"; machine {busy_cores:.2f}/{nproc} cores"
    if busy_cores >= 0.9 * nproc:
        return f"saturated by {max(shares, key=shares.get)} ({who})"
    return f"not saturated ({who})"


def churn_openssh(cfg, sshd, c, window):
    """C threads, each running `ssh -o ControlMaster=no host true` again as
    soon as the last one exited, for `window` seconds (and at most
    cfg.churn_max_per_loop connections each); wall time and rusage per ssh."""
    # curve25519: the kex libssh2 1.10 negotiates (OpenSSH's default,
    # sntrup761x25519, costs ~6x the CPU; see the handshake case).
    argv = ssh_base(sshd, ["-o", "ControlMaster=no", "-o", "ConnectTimeout=15",
                           "-o", "KexAlgorithms=curve25519-sha256"]) + [target(sshd), "true"]
    side = Side([])  # every ssh is reaped by run_timed: its CPU comes as rusage
    sshd_side = Side([sshd.proc.pid])
    lock = threading.Lock()
    walls, failures, cpu = [], [], [0.0]
    deadline = [0.0]

    def loop():
        for _ in range(cfg.churn_max_per_loop):
            if time.monotonic() >= deadline[0]:
                return
            rc, secs, cpu_s = run_timed(argv, side, timeout=60)
            with lock:
                cpu[0] += cpu_s
                if rc == 0:
                    walls.append(secs * 1000)
                else:
                    failures.append(rc)

    me0 = resource.getrusage(resource.RUSAGE_SELF)
    with Window(side, sample_secs=5.0) as w, Window(sshd_side, sample_secs=5.0) as ws, MachineCpu() as m:
        deadline[0] = time.monotonic() + window
        threads = [threading.Thread(target=loop, daemon=True) for _ in range(c)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(window + 90)
    me1 = resource.getrusage(resource.RUSAGE_SELF)
    tree = w.result()
    # The window ends when the last ssh started before the deadline exited.
    secs = tree["secs"]
    n = len(walls) + len(failures)
    p50, p99, pmax = percentiles_ms(cfg.bin, walls, 0.5, 0.99, 1.0)
    res = {"sessions": c, "window_s": secs, "attempted": n, "succeeded": len(walls), "failed": len(failures),
           "failure_exit_codes": sorted(set(failures)), "conn_per_s": round(len(walls) / secs, 1),
           "client_cpu_ms_per_conn": per_conn(cpu[0] * 1000, n), "client_cpu_pct": tree["cpu_pct"],
           "sshd_cpu_pct": ws.result()["cpu_pct"], "machine_busy_cores": m.busy_cores(),
           "sshd_cpu_ms_per_conn": per_conn(ws.result()["cpu_pct"] * 10 * secs, n),
           "latency_ms": {"ssh_true_wall": {"n": len(walls), "p50": p50, "p99": p99, "max": pmax}}}
    res["driver_cpu_pct"] = round(100 * (me1.ru_utime + me1.ru_stime - me0.ru_utime - me0.ru_stime) / secs, 3)
    res["saturation"] = saturation(cfg, res["machine_busy_cores"], res["sshd_cpu_pct"], res["client_cpu_pct"],
                                   res["driver_cpu_pct"])
    return res
