"""scale N: N sessions under the medium workload, cost per session and
whether any event was lost (sshsoak only)."""
import statistics
import time
from datetime import datetime

from .common import Sshd, Window, log, settle
from .sshsoak_run import SshsoakRun

# Scale holds 200 sessions: sshd's per-source limits must not be what is measured.
BIG_SSHD_CONFIG = "MaxStartups 100:30:400\nMaxSessions 20\n"


def measure(cfg, env):
    workdir = env.workdir
    out = {}
    for n in cfg.scale_ns:
        sshd = Sshd(BIG_SSHD_CONFIG)
        try:
            # A faster connect ramp than the default 5/s (the ramp is not
            # what this case measures); the bench sshd's MaxStartups allows it.
            extra = ["--token-rate", "25", "--token-burst", "8"]
            run = SshsoakRun(cfg.bin, sshd, workdir, n, cfg.scale_window + n / 25 + 120, extra, tag=f"scale-{n}")
            if not run.wait_for("connected", n, n / 25 + 60):
                raise RuntimeError(f"scale N={n}: only {run.count('connected')} connected")
            settle(cfg.settle)
            lines0 = len(run.events())
            w0 = time.time()
            with Window(run.side, sample_secs=5.0, focus=run.proc.pid) as w:
                time.sleep(cfg.scale_window)
            w1 = time.time()
            lines1 = len(run.events())
            res = w.result()
            rc = run.stop(timeout=120)
            ev = run.events()
            res.update(scale_checks(ev, n, (w0, w1)))
            res["exit_code"] = rc
            res["events_per_s"] = round((lines1 - lines0) / res["secs"], 1)
            res["pss_per_session_mb"] = round(res["pss_mb"] / n, 3)
            res["cpu_pct_per_session"] = round(res["cpu_pct"] / n, 4)
            res["sessions"] = n
            res.update(sshd.drops_since(0))
            out[str(n)] = res
            log(f"scale N={n}: {res}")
        finally:
            sshd.cleanup()
    return out


def ts_of(e):
    return datetime.fromisoformat(e["ts"]).timestamp()


def scale_checks(ev, n, window=None):
    """Events lost? The JSONL has no pty cycle number (the wire event has one),
    so: the summary line exists; its events_logged equals the lines before it;
    its per-session pty_cycles equal the lines we count; and within the
    measured window (every session up all along) no session's cycle count
    falls out of line with the others."""
    counts, in_window = {}, {}
    for e in ev:
        if e.get("event") == "pty_cycle":
            counts[e["session_id"]] = counts.get(e["session_id"], 0) + 1
            if window and window[0] <= ts_of(e) <= window[1]:
                in_window[e["session_id"]] = in_window.get(e["session_id"], 0) + 1
    summary = next((e for e in ev if e.get("event") == "summary"), None)
    lines_before = next((i for i, e in enumerate(ev) if e.get("event") == "summary"), len(ev))
    mismatched = None
    logged = None
    if summary:
        per = {p["session_id"]: p.get("pty_cycles") for p in summary.get("per_session", [])}
        mismatched = sum(1 for sid, c in per.items() if c != counts.get(sid, 0))
        logged = summary.get("events_logged")
    wc = in_window if window else counts
    med = statistics.median(wc.values()) if wc else 0
    outliers = sum(1 for sid in counts if wc.get(sid, 0) < med - 2)
    return {"sessions_with_cycles": len(counts), "window_pty_cycles_median": med,
            "window_pty_cycles_min": min(wc.values()) if wc else 0,
            "cycle_outlier_sessions": outliers, "summary_line": summary is not None,
            "summary_events_logged": logged, "lines_before_summary": lines_before,
            "summary_count_mismatch_sessions": mismatched,
            "events_lost": (summary is None) or (mismatched != 0) or (outliers != 0) or len(counts) < n,
            "abnormal_ends": summary.get("abnormal_ends") if summary else None,
            "connected": sum(1 for e in ev if e.get("event") == "connected"),
            "disconnected": sum(1 for e in ev if e.get("event") == "disconnected"),
            "exec_poll_errors": sum(1 for e in ev if e.get("event") == "exec_poll_error"),
            "pty_errors": sum(1 for e in ev if e.get("event") == "pty_error")}
