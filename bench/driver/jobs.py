"""jobs (issue 13 "Targets"): W workers running short jobs of three commands
(`uname -n`, `date +%s`, `true`) back to back against the bench sshd, the
same number of jobs N each way, one way after the other:

- plain ssh per job: W loops, each job one `ssh host 'c1; c2; c3'`. One
  connection per job, but only one: the three commands share it, which is
  generous to plain ssh (a scheduler running each command as its own `ssh`
  would pay three connections per job). curve25519 key exchange, as libssh2
  negotiates (OpenSSH's default sntrup761x25519 costs ~6x the CPU: see the
  handshake case), ed25519 key, BatchMode.
- OpenSSH ControlMaster: W loops, each with its own
  `-o ControlMaster=auto -o ControlPath=... -o ControlPersist=60`; each
  command is one `ssh` invocation over the loop's master (three per job);
  the masters are closed with `ssh -O exit` after the window.
- sshsoak `--workload jobs --sessions W --job-rate 0 --job-count N` (closed
  loop: a worker gets its next job when it reports the last), `--reuse off`
  and `--reuse on`; optionally `--compare-reuse` (both phases in one run).

Per way: jobs/s (jobs done / wall time from the first job's start to the
last one's end), job latency p50/p95 (OpenSSH: the job's wall time, the
three invocations' for ControlMaster; sshsoak: its `total` latency, queue
wait + connect + run), connections opened, the CPU of the sshd tree (the
listener and its children, live and reaped: utime+stime+cutime+cstime from
/proc, as every case measures it) and of the client (OpenSSH: wait4 rusage of
every `ssh` plus the masters' own ticks from /proc; sshsoak: its wait4 rusage,
which holds its agents', over its whole run), each per job.

sshsoak's figures come from its summary line's `workload` object
(docs/reference.md, "Jobs"): jobs_per_sec, latency_ms.total.p50/p95,
connections_opened. Where a field is missing, from the log's lines, whose
shape the same section fixes: `job_phase` (secs, results, server_cpu_ms) and
`job_stats` (done, connections_opened, the latency_us.total histograms,
merged exactly by hdr.py). `--server-pid` is the bench sshd, so sshsoak's own
sshd CPU per phase (job_phase.server_cpu_ms) is beside the driver's.

Every loop is bounded: N jobs in all and cfg.jobs_max_secs per way; each ssh
is killed after 60 s; each sshsoak run has a --duration-secs and is stopped
by PID.
"""
import os
import re
import signal
import subprocess
import threading
import time

from . import hdr
from .churn import saturation
from .common import MachineCpu, Side, Sshd, Window, log, run_timed, ssh_base, target, wait_rusage
from .from_binary import percentiles_ms
from .sshsoak_run import SshsoakRun

JOB_COMMANDS = ["uname -n", "date +%s", "true"]
KEX = ["-o", "KexAlgorithms=curve25519-sha256"]


def measure(cfg, env):
    # A sshd of its own with the bench's default configuration (sshd's own
    # MaxStartups 10:30:100 and MaxSessions 10: W = 4 stays under both), so
    # that nothing of another case is in its CPU.
    sshd = Sshd()
    out = {"workers": cfg.jobs_workers, "jobs": cfg.jobs_count, "commands": JOB_COMMANDS}
    try:
        check_commands(cfg, sshd)
        ways = [("plain_ssh", lambda: plain_ssh(cfg, sshd)),
                ("control_master", lambda: control_master(cfg, sshd)),
                ("sshsoak_reuse_off", lambda: sshsoak_jobs(cfg, sshd, env.workdir, "off")),
                ("sshsoak_reuse_on", lambda: sshsoak_jobs(cfg, sshd, env.workdir, "on"))]
        if cfg.jobs_compare:
            ways.append(("sshsoak_compare_reuse", lambda: sshsoak_compare(cfg, sshd, env.workdir)))
        for name, run in ways:
            try:
                out[name] = run()
            except Exception as e:  # one way failing leaves the others' figures
                out[name] = {"error": f"{type(e).__name__}: {e}"}
            log(f"jobs {name}: {out[name]}")
    finally:
        sshd.cleanup()
    out["verdicts"] = verdicts(out)
    return out


def check_commands(cfg, sshd):
    """One job by plain ssh, its output read: the commands do run and print
    what they should (a host name, then the epoch), so that no way is timing
    a command that fails at once."""
    argv = ssh_base(sshd, ["-o", "ControlMaster=no", "-o", "ConnectTimeout=15", *KEX]) + \
        [target(sshd), "; ".join(JOB_COMMANDS)]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    lines = r.stdout.split()
    if r.returncode != 0 or len(lines) != 2 or not lines[1].isdigit() or \
            abs(int(lines[1]) - time.time()) > 60:
        raise RuntimeError(f"the job's commands do not run as expected on the bench sshd: exit {r.returncode}, "
                           f"stdout {r.stdout!r}, stderr {r.stderr.strip()[:300]!r}")


class JobLoops:
    """W threads taking jobs from one counter of N (the same closed loop for
    every OpenSSH way), each job run by run_job(worker) -> (ok, wall_s,
    client_cpu_s); bounded by the count and by a deadline."""

    def __init__(self, cfg, run_job):
        self.cfg, self.run_job = cfg, run_job
        self.lock = threading.Lock()
        self.taken = 0
        self.walls, self.failures, self.cpu = [], 0, 0.0
        self.first_start = self.last_end = None

    def _loop(self, worker, deadline):
        while time.monotonic() < deadline:
            with self.lock:
                if self.taken >= self.cfg.jobs_count:
                    return
                self.taken += 1
            t0 = time.monotonic()
            ok, wall, cpu = self.run_job(worker)
            t1 = time.monotonic()
            with self.lock:
                self.first_start = t0 if self.first_start is None else min(self.first_start, t0)
                self.last_end = t1 if self.last_end is None else max(self.last_end, t1)
                self.cpu += cpu
                if ok:
                    self.walls.append(wall * 1000)
                else:
                    self.failures += 1

    def run(self):
        deadline = time.monotonic() + self.cfg.jobs_max_secs
        threads = [threading.Thread(target=self._loop, args=(w, deadline), daemon=True)
                   for w in range(self.cfg.jobs_workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.cfg.jobs_max_secs + 120)  # each ssh is killed at 60 s

    def figures(self, cfg):
        n = len(self.walls) + self.failures
        secs = (self.last_end - self.first_start) if n else None
        p50, p95 = percentiles_ms(cfg.bin, self.walls, 0.5, 0.95)
        return {"jobs": n, "done": len(self.walls), "failed": self.failures,
                "secs": round(secs, 2) if secs else None,
                "jobs_per_sec": round(len(self.walls) / secs, 1) if secs else None,
                "latency_ms": {"p50": p50, "p95": p95},
                "complete": n == cfg.jobs_count}


def per_job(ms, n):
    return round(ms / n, 2) if n else None


def cpu_figures(cfg, res, client_ms, sshd_ms, machine, wall_secs):
    """CPU per job, and who used the machine over the way's wall time (on a
    shared machine "other" is someone else's load: say so beside the rate)."""
    n = res["jobs"]
    res.update({"client_cpu_ms_per_job": per_job(client_ms, n), "sshd_cpu_ms_per_job": per_job(sshd_ms, n),
                "client_cpu_ms": round(client_ms), "sshd_cpu_ms": round(sshd_ms), "machine_busy_cores": machine})
    if wall_secs:
        res["saturation"] = saturation(cfg, machine, sshd_ms / wall_secs / 10, client_ms / wall_secs / 10)
    return res


def window_ms(w):
    r = w.result()
    return r["cpu_pct"] * 10 * r["secs"]  # % of one core over secs -> ms


def plain_ssh(cfg, sshd):
    argv = ssh_base(sshd, ["-o", "ControlMaster=no", "-o", "ConnectTimeout=15", *KEX]) + \
        [target(sshd), "; ".join(JOB_COMMANDS)]
    side = Side([])  # every ssh is reaped by run_timed: its CPU comes as rusage
    sshd_side = Side([sshd.proc.pid])
    accepted0 = sshd.log_size()

    def job(_worker):
        rc, secs, cpu = run_timed(argv, side, timeout=60)
        return rc == 0, secs, cpu

    loops = JobLoops(cfg, job)
    with Window(side, sample_secs=5.0) as w, Window(sshd_side, sample_secs=5.0) as ws, MachineCpu() as m:
        loops.run()
    res = loops.figures(cfg)
    res["connections_opened"] = sshd.accepted_since(accepted0)
    res["note"] = "one connection per job for its 3 commands (generous to plain ssh); curve25519 kex"
    return cpu_figures(cfg, res, window_ms(w), window_ms(ws), m.busy_cores(), w.result()["secs"])


def master_pid(sshd, path):
    """The master's PID, as `ssh -O check` tells it ("Master running (pid=N)")."""
    r = subprocess.run(ssh_base(sshd, ["-o", f"ControlPath={path}", "-O", "check"]) + [target(sshd)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
    m = re.search(r"pid=(\d+)", r.stderr)
    return int(m.group(1)) if m else None


def control_master(cfg, sshd):
    paths = [f"{sshd.dir}/cm-{w}" for w in range(cfg.jobs_workers)]
    masters = {}  # worker -> the master's PID, once its first command made it
    side = Side(lambda: list(masters.values()))  # the masters (detached: nobody reaps them) + rusage of each ssh
    sshd_side = Side([sshd.proc.pid])
    accepted0 = sshd.log_size()

    def argv(w, command):
        return ssh_base(sshd, ["-o", "ControlMaster=auto", "-o", f"ControlPath={paths[w]}",
                               "-o", "ControlPersist=60", "-o", "ConnectTimeout=15", *KEX]) + [target(sshd), command]

    def job(w):
        wall = cpu = 0.0
        for c in JOB_COMMANDS:  # abort at the first failure, as sshsoak's default strategy does
            rc, secs, cpu_s = run_timed(argv(w, c), side, timeout=60)
            wall += secs
            cpu += cpu_s
            if rc != 0:
                return False, wall, cpu
        if w not in masters:
            masters[w] = master_pid(sshd, paths[w])
            if masters[w] is None:
                raise RuntimeError(f"worker {w}: no ControlMaster behind {paths[w]} after a job")
        return True, wall, cpu

    loops = JobLoops(cfg, job)
    try:
        with Window(side, sample_secs=5.0) as w, Window(sshd_side, sample_secs=5.0) as ws, MachineCpu() as m:
            loops.run()
    finally:
        for p in paths:  # the masters end with their ControlPath (ControlPersist=60 otherwise)
            if os.path.exists(p):
                run_timed(ssh_base(sshd, ["-o", f"ControlPath={p}", "-O", "exit"]) + [target(sshd)], timeout=15)
    res = loops.figures(cfg)
    res["connections_opened"] = sshd.accepted_since(accepted0)
    res["masters"] = len(masters)
    res["note"] = "3 ssh invocations per job over each loop's master; masters closed after the window"
    return cpu_figures(cfg, res, window_ms(w), window_ms(ws), m.busy_cores(), w.result()["secs"])


def sshsoak_args(cfg, sshd, reuse):
    """reuse: "on", "off", or "compare" (--compare-reuse: both phases, N jobs each)."""
    policy = ["--compare-reuse"] if reuse == "compare" else ["--reuse", reuse]
    return ["--workload", "jobs", *policy, "--job-rate", "0", "--job-count", str(cfg.jobs_count),
            "--job-commands", ";".join(JOB_COMMANDS), "--job-report-secs", "1",
            "--server-pid", str(sshd.proc.pid)]


def run_sshsoak(cfg, sshd, workdir, reuse, tag, expected_results):
    """One sshsoak run of the jobs workload, measured from its start to its
    end (it ends once every job has its result; SIGTERM if it has not
    cfg.jobs_max_secs after its start)."""
    sshd_side = Side([sshd.proc.pid])
    with MachineCpu() as m, Window(sshd_side, sample_secs=5.0) as ws:
        t0 = time.monotonic()
        run = SshsoakRun(cfg.bin, sshd, workdir, cfg.jobs_workers, cfg.jobs_max_secs + 30,
                         sshsoak_args(cfg, sshd, reuse), tag=tag)
        ended_itself, ru = wait_results(run, expected_results, cfg.jobs_max_secs)
        wall = time.monotonic() - t0
        rc = run.stop()  # reaped already: closes its console
    # The client's CPU is the run's whole life: sshsoak's own rusage, which
    # holds its agents' (it reaps them), taken when the driver reaped it.
    client_ms = (ru.ru_utime + ru.ru_stime) * 1000
    return run.events(), rc, ended_itself, client_ms, window_ms(ws), m.busy_cores(), run.log_path, wall


def wait_results(run, expected, max_secs, grace=5.0, first_report_secs=20.0):
    """(True, rusage) if the run ended by itself (every job has its result);
    (False, rusage) if it had to be stopped (SIGTERM, then reaped here): at
    max_secs, `grace` s after its job_queue lines counted every result
    without the run ending, or when no job_queue line came within
    first_report_secs (--job-report-secs is 1: the workload is not running)."""
    start = time.monotonic()
    deadline = start + max_secs
    all_in = None
    next_read = start + 1.0
    while time.monotonic() < deadline:
        pid, status, ru = os.wait4(run.proc.pid, os.WNOHANG)
        if pid == run.proc.pid:
            run.proc.returncode = os.waitstatus_to_exitcode(status)
            return True, ru
        now = time.monotonic()
        if all_in is None and now >= next_read:
            next_read = now + 1.0
            # job_queue's counts are the run's (every phase so far).
            q = [e for e in run.events() if e.get("event") == "job_queue"]
            if not q and now - start > first_report_secs:
                break
            if max((e.get("results", 0) for e in q), default=0) >= expected:
                all_in = now
        if all_in is not None and now - all_in > grace:
            break
        time.sleep(0.1)
    run.proc.send_signal(signal.SIGTERM)  # clean shutdown: the summary is written
    _, ru = wait_rusage(run.proc, timeout=60, what="sshsoak after SIGTERM")
    return False, ru


def phase_figures(ev, phase, n_expected):
    """sshsoak's figures for one phase (reuse_off / reuse_on): the summary's
    workload object where it has them, else the log's job_phase and job_stats
    lines. `source` says which."""
    stats = [e for e in ev if e.get("event") == "job_stats" and e.get("phase", phase) == phase]
    phases = [e for e in ev if e.get("event") == "job_phase" and e.get("phase") == phase]
    jp = phases[-1] if phases else {}
    done = sum(e.get("done", 0) for e in stats)
    failed = sum(e.get("failed", 0) + e.get("aborted", 0) + e.get("cancelled", 0) for e in stats)
    total = hdr.merge(e["latency_us"]["total"] for e in stats if "total" in e.get("latency_us", {}))
    run_h = hdr.merge(e["latency_us"]["run"] for e in stats if "run" in e.get("latency_us", {}))
    qw = hdr.merge(e["latency_us"]["queue_wait"] for e in stats if "queue_wait" in e.get("latency_us", {}))
    secs = jp.get("secs")
    from_log = {
        "jobs": done + failed, "done": done, "failed": failed, "secs": secs,
        "jobs_per_sec": round(done / secs, 1) if secs else None,
        "latency_ms": {"p50": total.figures(1000.0)["p50"], "p95": pct(total, 95)},
        "run_latency_ms": {"p50": run_h.figures(1000.0)["p50"], "p95": pct(run_h, 95)},
        "queue_wait_ms": {"p50": qw.figures(1000.0)["p50"], "p95": pct(qw, 95)},
        "connections_opened": sum(e.get("connections_opened", 0) for e in stats),
        "reused": sum(e.get("reused", 0) for e in stats),
        "dead_replaced": sum(e.get("dead_replaced", 0) for e in stats),
        "server_cpu_ms": jp.get("server_cpu_ms"),
        "not_started": jp.get("not_started"),
        "complete": done + failed == n_expected,
    }
    return from_log


def pct(h, p):
    v = h.percentile(p)
    return None if v is None else round(v / 1000.0, 1)


def summary_workload(ev):
    s = [e for e in ev if e.get("event") == "summary"]
    return (s[-1].get("workload") or {}) if s else {}


def from_summary(res, w, phase=None):
    """Overlays the summary's workload figures (phase: its `phases` entry)
    on the log's; each key says where it came from."""
    src = (w.get("phases") or {}).get(phase, {}) if phase else w
    got = []
    if isinstance(src.get("jobs_per_sec"), (int, float)):
        res["jobs_per_sec_log"], res["jobs_per_sec"] = res["jobs_per_sec"], round(src["jobs_per_sec"], 1)
        got.append("jobs_per_sec")
    tot = ((src.get("latency_ms") or {}).get("total") or {})
    if isinstance(tot.get("p95"), (int, float)):
        res["latency_ms_log"] = res["latency_ms"]
        res["latency_ms"] = {"p50": tot.get("p50"), "p95": tot["p95"]}
        got.append("latency_ms.total")
    if isinstance(src.get("connections_opened"), (int, float)):
        res["connections_opened"] = src["connections_opened"]
        got.append("connections_opened")
    if isinstance(src.get("server_cpu_ms"), (int, float)):
        res["server_cpu_ms"] = src["server_cpu_ms"]
        got.append("server_cpu_ms")
    res["source"] = ("summary workload: " + ", ".join(got) + "; the rest from the log") if got else "log lines"
    return res


def sshsoak_jobs(cfg, sshd, workdir, reuse):
    ev, rc, ended, client_ms, sshd_ms, machine, log_path, wall = run_sshsoak(
        cfg, sshd, workdir, reuse, f"jobs-reuse-{reuse}", cfg.jobs_count)
    phase = f"reuse_{reuse}"
    if not any(e.get("event") in ("job_stats", "job_phase") for e in ev):
        raise RuntimeError(f"sshsoak --workload jobs logged no job_stats/job_phase line (exit {rc}); see {log_path}")
    res = from_summary(phase_figures(ev, phase, cfg.jobs_count), summary_workload(ev))
    res.update({"exit_code": rc, "ended_by_itself": ended, "log": log_path})
    return cpu_figures(cfg, res, client_ms, sshd_ms, machine, wall)


def sshsoak_compare(cfg, sshd, workdir):
    """--compare-reuse: one run, reuse off then on, N jobs each; per phase
    from the summary's phases (else the log), sshd CPU from job_phase."""
    ev, rc, ended, client_ms, sshd_ms, machine, log_path, _wall = run_sshsoak(
        cfg, sshd, workdir, "compare", "jobs-compare-reuse", 2 * cfg.jobs_count)
    w = summary_workload(ev)
    out = {"exit_code": rc, "ended_by_itself": ended, "log": log_path,
           "client_cpu_ms": round(client_ms), "sshd_cpu_ms": round(sshd_ms), "machine_busy_cores": machine}
    for phase in ("reuse_off", "reuse_on"):
        out[phase] = from_summary(phase_figures(ev, phase, cfg.jobs_count), w, phase)
    return out


def verdicts(out):
    """The issue's targets: reuse on >= 5x plain ssh per job in jobs/s, and
    matching or beating ControlMaster (>= 0.95x: within the run-to-run noise
    of this machine counts as a match)."""
    def rate(name):
        v = out.get(name) or {}
        return v.get("jobs_per_sec") if v.get("complete") else None

    on, plain, cm = rate("sshsoak_reuse_on"), rate("plain_ssh"), rate("control_master")
    v = {}
    if on is not None and plain:
        v["reuse_on_vs_plain_ssh"] = {"ratio": round(on / plain, 2), "target": ">= 5x", "pass": on >= 5 * plain}
    if on is not None and cm:
        v["reuse_on_vs_control_master"] = {"ratio": round(on / cm, 2), "target": ">= 0.95x (match or beat)",
                                           "pass": on >= 0.95 * cm}
    return v
