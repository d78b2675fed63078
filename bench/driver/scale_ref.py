"""scale-ref (issue 14): N light sessions of sshsoak beside N idle plain
OpenSSH clients, for N in 10, 200, 1000 by default, against one private sshd
on 127.0.0.1. Run through scripts/bench-scale.sh; docs/benchmarks.md, "Issue 14".

For each N, one after the other (never both sides at once on the machine):
  1. sshsoak, a light workload (--poll-interval-secs 60 --pty-interval-secs 60,
     keepalives every --keepalive-secs), connects paced by its token bucket;
     once all N are connected and a settle, a window of --secs is measured
     from /proc: the supervisor's CPU, the agents' CPU, each agent's PSS
     (smaps_rollup), the log's growth; then SIGTERM, the summary's abnormal
     ends, and `sshsoak report LOG --html X` timed (the verdict and report).
  2. N `ssh -N` clients (ControlMaster off, ServerAliveInterval = the same
     keepalive) against the same sshd, paced at the same rate, idle for the
     same window: their CPU and PSS.
Every process is ours and stopped by PID; every wait is bounded in time.
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time

from .common import (LIVE, TICK, MachineCpu, Sshd, log, machine_info, proc_table, run_timed, spawn, ssh_base,
                     stop_pids, target, tree)
from .sshsoak_run import SshsoakRun

# 1000 connections from one address: the server's startup limits must not be
# what is measured (the token bucket keeps unauthenticated ones under ~10).
SSHD_CONFIG = "MaxStartups 1100:30:2000\nMaxSessions 20\n"
# The targets, printed beside the figures.
TARGETS = {"pss_per_session_mb": 0.8, "supervisor_cpu_pct_200": 0.5, "supervisor_cpu_pct_1000": 2.0,
           "idle10_total_cpu_pct": 0.05, "total_pss_gb_1000": 1.0, "log_kb_per_session_hour": 200}


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


class LogCounter:
    """Counts events in a growing JSONL log by reading only what was added."""

    def __init__(self, path):
        self.path, self.offset, self.counts, self.tail = path, 0, {}, b""

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        data = self.tail + data
        cut = data.rfind(b"\n") + 1
        self.tail = data[cut:]
        for m in re.finditer(rb'"event":"([a-z_]+)"', data[:cut]):
            k = m.group(1).decode()
            self.counts[k] = self.counts.get(k, 0) + 1

    def count(self, event):
        return self.counts.get(event, 0)


def cpu_ns(pid):
    """CPU time of a process's threads in ns (/proc/PID/task/*/schedstat):
    an idle agent or ssh client uses less than one clock tick (10 ms) in a
    2-minute window, which /proc/PID/stat would show as 0."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def measure_window(secs, sample_secs, groups, sshd):
    """groups: name -> callable returning the pids of that group now. CPU
    per group over the window (processes alive at both ends, schedstat ns),
    PSS per group sampled every sample_secs (mean of the samples' sums), the
    local sshd's processes (ticks, with the reaped per-connection ones), and
    the whole machine."""
    def ticks(_table, pids):
        out = {}
        for p in pids:
            v = cpu_ns(p)
            if v is not None:
                out[p] = v
        return out

    table = proc_table()
    pids0 = {g: list(f()) for g, f in groups.items()}
    t0 = {g: ticks(table, ps) for g, ps in pids0.items()}
    sshd_pids0 = tree([sshd.proc.pid], table)
    s0 = sum(table[p][1] for p in sshd_pids0 if p in table)
    pss = {g: [] for g in groups}
    start = time.monotonic()
    with MachineCpu() as machine:
        for _ in range(int(secs / sample_secs) + 1):  # bounded in count and time
            left = start + secs - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(sample_secs, left))
            for g, f in groups.items():
                vals = [v for v in (pss_kb(p) for p in f()) if v is not None]
                pss[g].append((sum(vals), len(vals)))
    table = proc_table()
    elapsed = time.monotonic() - start
    out = {"secs": round(elapsed, 1), "busy_cores": machine.busy_cores()}
    for g in groups:
        t1 = ticks(table, pids0[g])
        d = sum(t1[p] - t0[g][p] for p in t1 if p in t0[g])
        out[g] = {"cpu_pct": round(100.0 * d / 1e9 / elapsed, 4), "procs_start": len(pids0[g]),
                  "procs_alive_end": len(t1),
                  "pss_kb_mean": round(statistics.mean(s for s, _ in pss[g])) if pss[g] else None,
                  "pss_procs_mean": round(statistics.mean(n for _, n in pss[g]), 1) if pss[g] else None}
    sshd_pids1 = tree([sshd.proc.pid], table)
    s1 = sum(table[p][1] for p in sshd_pids1 if p in table)
    # sshd's per-connection processes that ended in the window were reaped by
    # sshd (their CPU lands in its cutime): both ends include them.
    out["sshd"] = {"cpu_pct": round(100.0 * (s1 - s0) / TICK / elapsed, 3), "procs": len(sshd_pids1)}
    return out


def agents_of(run):
    def f():
        if run.proc.returncode is not None:
            return []
        table = proc_table()
        return [p for p, (pp, _) in table.items() if pp == run.proc.pid and comm(p).startswith("soak-agent")]
    return f


def samples_in(log_path, w0, w1, detail_secs, v1_secs=1.0):
    """resource_sample lines whose ts falls in [w0, w1] (epoch seconds) and
    the samples missed: what the lines say (resource_sample v2's `missed`,
    lines every --sample-detail-secs) or, from a v1 sampler (a line every
    --sample-interval-secs, 1 s by default, no `missed`), expected - lines."""
    from datetime import datetime
    got, missed, has_missed = 0, 0, False
    with open(log_path, "rb") as f:
        for line in f:
            if b'"resource_sample"' not in line:
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue
            t = datetime.fromisoformat(e["ts"]).timestamp()
            if w0 <= t <= w1:
                got += 1
                if "missed" in e:
                    has_missed = True
                    missed += int(e["missed"] or 0)
    expected = int((w1 - w0) / (detail_secs if has_missed else v1_secs))
    return {"samples_in_window": got, "samples_expected": expected,
            "samples_missed": missed if has_missed else max(0, expected - got),
            "missed_from": "resource_sample.missed" if has_missed else "expected - lines"}


def summary_of(log_path):
    with open(log_path, "rb") as f:
        for line in f:
            if b'"event":"summary"' in line:
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    return None
    return None


def run_sshsoak(cfg, sshd, n):
    ramp = n / cfg.token_rate + 60
    extra = ["--poll-interval-secs", str(cfg.poll_secs), "--pty-interval-secs", str(cfg.pty_secs),
             "--keepalive-interval-secs", str(cfg.keepalive_secs), "--token-rate", str(cfg.token_rate),
             "--token-burst", str(cfg.token_burst), "--shutdown-timeout-secs", "60", *cfg.sshsoak_args]
    tag = f"scale-{n}"
    t_start = time.monotonic()
    run = SshsoakRun(cfg.bin, sshd, cfg.workdir, n, ramp + cfg.settle + cfg.secs + 120, extra, tag=tag)
    counter = LogCounter(run.log_path)
    deadline = time.monotonic() + ramp
    while time.monotonic() < deadline:  # bounded: the ramp's budget
        if run.proc.poll() is not None:
            raise RuntimeError(f"scale N={n}: sshsoak exited early ({run.proc.returncode}); see {run.console.name}")
        counter.update()
        if counter.count("connected") >= n:
            break
        time.sleep(0.5)
    ramp_secs = round(time.monotonic() - t_start, 1)
    connected_ramp = counter.count("connected")
    log(f"scale N={n}: sshsoak {connected_ramp}/{n} connected after {ramp_secs} s")
    time.sleep(cfg.settle)
    size0, w0 = os.path.getsize(run.log_path), time.time()
    agents = agents_of(run)
    w = measure_window(cfg.secs, cfg.sample_secs, {"supervisor": lambda: [run.proc.pid] if run.proc.returncode is None
                                                   else [], "agents": agents}, sshd)
    size1, w1 = os.path.getsize(run.log_path), time.time()
    t_stop = time.monotonic()
    rc = run.stop(timeout=180)
    stop_secs = round(time.monotonic() - t_stop, 1)
    counter.update()
    summary = summary_of(run.log_path) or {}
    html = f"{cfg.workdir}/{tag}.html"
    rep_rc, rep_secs, rep_cpu = run_timed([f"{cfg.bin}/sshsoak", "report", run.log_path, "--html", html],
                                          timeout=600)
    sup, ag = w["supervisor"], w["agents"]
    res = {
        "sessions": n, "ramp_secs": ramp_secs, "connected_at_ramp_end": connected_ramp,
        "connected_events": counter.count("connected"), "disconnected_events": counter.count("disconnected"),
        "abnormal_ends": summary.get("abnormal_ends"), "sessions_up_at_end": summary.get("sessions_up_at_end"),
        "agent_crashes": summary.get("agent_crashes"), "exit_code": rc, "stop_secs": stop_secs,
        "window_secs": w["secs"], "busy_cores": w["busy_cores"],
        "supervisor_cpu_pct": sup["cpu_pct"],
        "agents_cpu_pct": ag["cpu_pct"],
        "agents_cpu_pct_per_session": round(ag["cpu_pct"] / n, 5),
        "agents_alive_end": ag["procs_alive_end"],
        "supervisor_pss_mb": round(sup["pss_kb_mean"] / 1024, 2) if sup["pss_kb_mean"] is not None else None,
        "pss_per_session_mb": round(ag["pss_kb_mean"] / 1024 / n, 3) if ag["pss_kb_mean"] is not None else None,
        "total_pss_mb": round(((sup["pss_kb_mean"] or 0) + (ag["pss_kb_mean"] or 0)) / 1024, 1),
        "sshd_cpu_pct": w["sshd"]["cpu_pct"], "sshd_procs": w["sshd"]["procs"],
        "log_kb_per_session_hour": round((size1 - size0) / 1024 / n / (w["secs"] / 3600), 1),
        "log_bytes_total": os.path.getsize(run.log_path),
        "report_secs": round(rep_secs, 2), "report_cpu_secs": round(rep_cpu, 2), "report_exit_code": rep_rc,
    }
    res.update(samples_in(run.log_path, w0, w1, cfg.sample_detail_secs))
    return res


def run_reference(cfg, sshd, n):
    off = sshd.log_size()
    base = ssh_base(sshd, ["-N", "-o", "ControlMaster=no", "-o", f"ServerAliveInterval={cfg.keepalive_secs}",
                           "-o", "ServerAliveCountMax=3"])
    procs = []
    t_start = time.monotonic()
    # The same budget as sshsoak's ramp; on a loaded machine the clients'
    # handshakes queue, and the table then says how many made it.
    deadline = t_start + n / cfg.token_rate + 60
    try:
        for i in range(n):  # paced as sshsoak's token bucket: burst, then rate per second
            if time.monotonic() > deadline:
                log(f"scale N={n}: ssh ramp budget spent after {i} clients started")
                break
            procs.append(spawn(base + [target(sshd)]))
            if i + 1 >= cfg.token_burst:
                time.sleep(1.0 / cfg.token_rate)
        while sshd.accepted_since(off) < n and time.monotonic() < deadline:
            time.sleep(0.5)
        connected = sshd.accepted_since(off)
        ramp_secs = round(time.monotonic() - t_start, 1)
        log(f"scale N={n}: ssh {connected}/{n} connected after {ramp_secs} s")
        time.sleep(cfg.settle)
        alive = lambda: [p.pid for p in procs if p.poll() is None]
        w = measure_window(cfg.secs, cfg.sample_secs, {"clients": alive}, sshd)
        ended = sum(1 for p in procs if p.poll() is not None)
    finally:
        stop_pids(procs)
        for p in procs:
            LIVE.remove(p)
    c = w["clients"]
    return {"sessions": n, "ramp_secs": ramp_secs, "connected": connected, "ended_early": ended,
            "window_secs": w["secs"], "busy_cores": w["busy_cores"], "cpu_pct": c["cpu_pct"],
            "cpu_pct_per_session": round(c["cpu_pct"] / n, 5),
            "pss_per_session_mb": round(c["pss_kb_mean"] / 1024 / n, 3) if c["pss_kb_mean"] is not None else None,
            "total_pss_mb": round((c["pss_kb_mean"] or 0) / 1024, 1),
            "sshd_cpu_pct": w["sshd"]["cpu_pct"], "sshd_procs": w["sshd"]["procs"]}


def wait_sshd_idle(sshd, timeout=60):
    """Until the previous side's per-connection sshd processes are gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(tree([sshd.proc.pid], proc_table())) <= 1:
            return True
        time.sleep(0.5)
    return False


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def render(results):
    ns = [k for k in results["runs"]]
    rows = [
        ("sessions connected", lambda s, r: f"{s.get('connected_events')} / {r.get('connected') if r else '-'}"),
        ("abnormal ends (sshsoak) / ended early (ssh)",
         lambda s, r: f"{fmt(s.get('abnormal_ends'))} / {fmt(r.get('ended_early')) if r else '-'}"),
        ("ramp s (all connected)", lambda s, r: f"{fmt(s.get('ramp_secs'))} / {fmt(r.get('ramp_secs')) if r else '-'}"),
        ("supervisor CPU %", lambda s, r: fmt(s.get("supervisor_cpu_pct"))),
        ("agents CPU % total / ssh clients", lambda s, r: f"{fmt(s.get('agents_cpu_pct'))} / {fmt(r.get('cpu_pct')) if r else '-'}"),
        ("CPU % per session: agent / ssh",
         lambda s, r: f"{fmt(s.get('agents_cpu_pct_per_session'))} / {fmt(r.get('cpu_pct_per_session')) if r else '-'}"),
        ("PSS MB per session: agent / ssh",
         lambda s, r: f"{fmt(s.get('pss_per_session_mb'))} / {fmt(r.get('pss_per_session_mb')) if r else '-'}"),
        ("supervisor PSS MB", lambda s, r: fmt(s.get("supervisor_pss_mb"))),
        ("total PSS MB: sshsoak / ssh", lambda s, r: f"{fmt(s.get('total_pss_mb'))} / {fmt(r.get('total_pss_mb')) if r else '-'}"),
        ("sshd CPU %: sshsoak / ssh", lambda s, r: f"{fmt(s.get('sshd_cpu_pct'))} / {fmt(r.get('sshd_cpu_pct')) if r else '-'}"),
        ("log KB per session-hour", lambda s, r: fmt(s.get("log_kb_per_session_hour"))),
        ("report --html s (CPU s)", lambda s, r: f"{fmt(s.get('report_secs'))} ({fmt(s.get('report_cpu_secs'))})"),
        ("samples missed / expected", lambda s, r: f"{fmt(s.get('samples_missed'))} / {fmt(s.get('samples_expected'))}"),
        ("machine busy cores: sshsoak / ssh", lambda s, r: f"{fmt(s.get('busy_cores'))} / {fmt(r.get('busy_cores')) if r else '-'}"),
        ("sshsoak stop s", lambda s, r: fmt(s.get("stop_secs"))),
    ]
    head = "| measure | " + " | ".join(f"N={n}" for n in ns) + " |"
    lines = [head, "|" + "---|" * (len(ns) + 1)]
    for name, f in rows:
        cells = []
        for n in ns:
            s = results["runs"][n].get("sshsoak") or {}
            r = results["runs"][n].get("ssh")
            cells.append(f(s, r) if s else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    t = TARGETS
    lines.append("")
    lines.append(f"Targets: PSS per session <= {t['pss_per_session_mb']} MB at 200; supervisor CPU <= "
                 f"{t['supervisor_cpu_pct_200']} % at 200 and <= {t['supervisor_cpu_pct_1000']} % at 1000; "
                 f"10 idle sessions <= {t['idle10_total_cpu_pct']} % total; total PSS <= {t['total_pss_gb_1000']} GB "
                 f"at 1000; log <= {t['log_kb_per_session_hour']} KB per session-hour; 0 abnormal ends.")
    return "\n".join(lines)


def parse_args():
    ap = argparse.ArgumentParser(prog="scripts/bench-scale.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="build/bin with sshsoak and sshsoak-agent")
    ap.add_argument("--ns", default="10,200,1000", help="session counts, in order (10,200,1000)")
    ap.add_argument("--secs", type=float, default=120, help="measured window per side and N, seconds (120)")
    ap.add_argument("--settle", type=float, default=10, help="seconds after the ramp before the window (10)")
    ap.add_argument("--sample-secs", type=float, default=10, help="PSS sampling period in the window (10)")
    ap.add_argument("--poll-secs", type=int, default=60, help="sshsoak --poll-interval-secs (60)")
    ap.add_argument("--pty-secs", type=float, default=60, help="sshsoak --pty-interval-secs (60)")
    ap.add_argument("--keepalive-secs", type=int, default=15,
                    help="sshsoak --keepalive-interval-secs and ssh ServerAliveInterval (15)")
    ap.add_argument("--token-rate", type=float, default=25, help="connects per second, both sides (25)")
    ap.add_argument("--token-burst", type=int, default=8, help="connects at once, both sides (8)")
    ap.add_argument("--sample-detail-secs", type=float, default=60,
                    help="the sshsoak run's --sample-detail-secs, to count the expected lines (60, its default)")
    ap.add_argument("--no-ref", action="store_true", help="sshsoak only, no OpenSSH clients")
    ap.add_argument("--out", default="bench-scale-results.json")
    ap.add_argument("--workdir", default=None, help="keep logs and reports here (default: a temp dir, removed)")
    ap.add_argument("sshsoak_args", nargs="*", help="after --: more sshsoak flags")
    cfg = ap.parse_args()
    cfg.ns_list = [int(x) for x in cfg.ns.split(",") if x.strip()]
    if not cfg.ns_list or min(cfg.ns_list) < 1 or max(cfg.ns_list) > 5000:
        ap.error(f"--ns {cfg.ns}: give session counts between 1 and 5000, e.g. 10,200,1000")
    if cfg.secs < 10 or cfg.secs > 3600:
        ap.error(f"--secs {cfg.secs}: give 10 to 3600 seconds")
    return cfg


class Stopped(Exception):
    pass


def on_signal(signum, _frame):
    raise Stopped(f"signal {signum}")


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cfg = parse_args()
    keep = cfg.workdir is not None
    cfg.workdir = cfg.workdir or tempfile.mkdtemp(prefix="sshsoak-bench-scale-")
    os.makedirs(cfg.workdir, exist_ok=True)
    results = {"machine": machine_info(), "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "nofile": resource.getrlimit(resource.RLIMIT_NOFILE), "runs": {}}
    log(f"machine: {results['machine']}; work dir {cfg.workdir}")
    sshd = None
    try:
        for n in cfg.ns_list:
            entry = results["runs"].setdefault(str(n), {})
            entry["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
            sshd = Sshd(SSHD_CONFIG)
            try:
                entry["sshsoak"] = run_sshsoak(cfg, sshd, n)
                log(f"scale N={n} sshsoak: {entry['sshsoak']}")
                if not cfg.no_ref:
                    if not wait_sshd_idle(sshd):
                        log(f"scale N={n}: sshd still has per-connection processes after 60 s")
                    entry["ssh"] = run_reference(cfg, sshd, n)
                    log(f"scale N={n} ssh: {entry['ssh']}")
                entry.update(sshd.drops_since(0))
            finally:
                sshd.cleanup()
                sshd = None
    finally:
        leftovers = [p for p in LIVE if p.poll() is None]
        if leftovers:
            log(f"stopping {len(leftovers)} leftover children by PID")
            stop_pids(leftovers, sig=signal.SIGKILL)
        if sshd:
            sshd.cleanup()
        results["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        with open(cfg.out, "w") as f:
            json.dump(results, f, indent=2)
        if not keep:
            shutil.rmtree(cfg.workdir, ignore_errors=True)
    print(render(results))
    print(f"\nFigures: {cfg.out}; machine {results['machine']['nproc']} cores, load "
          f"{' '.join(results['machine']['loadavg'])} at start, {' '.join(results['loadavg_end'])} at end")


if __name__ == "__main__":
    main()
