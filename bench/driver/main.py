"""The flags, the cases in the order they run, bench-results.json and the
printed table. Run through scripts/bench.sh."""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import types

from . import churn, footprint, handshake, jobs, memory, micro, report, scale, storm, throughput, transfer
from .common import LIVE, Sshd, log, machine_info, stop_pids

# Each case: name -> measure(cfg, env), env.sshd being the shared default sshd
# and env.workdir the logs' folder. In the order they run.
CASES = {
    "micro": micro.measure,
    "handshake": handshake.measure,
    "throughput": throughput.measure,
    "footprint": footprint.measure_footprint,
    "workload": footprint.measure_workload,
    "storm": storm.measure,
    "scale": scale.measure,
    "churn": churn.measure,
    "transfer": transfer.measure,
    "memory": memory.measure,
    "jobs": jobs.measure,
}
ALL = list(CASES)


class Stopped(Exception):
    pass


def on_signal(signum, _frame):
    raise Stopped(f"signal {signum}")


def parse_args():
    ap = argparse.ArgumentParser(prog="scripts/bench.sh", description=sys.modules[__package__].__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="build/bin with sshsoak, sshsoak-agent and the bench binaries")
    ap.add_argument("--quick", action="store_true", help="10 s windows, N=10 only, 1 repetition: to try the script")
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated cases: " + ",".join(ALL))
    ap.add_argument("--reps", type=int, default=None, help="repetitions of the short cases (3; --quick 1)")
    ap.add_argument("--reps-long", type=int, default=None,
                    help="repetitions of the 60-s footprint and workload cases (2, to stay under 20 min; --quick 1)")
    ap.add_argument("--out", default="bench-results.json")
    ap.add_argument("--scale-ns", default=None, help="session counts of the scale case (10,50,100,200)")
    ap.add_argument("--workdir", default=None, help="keep logs here (default: a temp dir, removed)")
    ap.add_argument("--churn-sustained-secs", type=int, default=None,
                    help="length of the sustained churn run at 100/s (60; --quick 10)")
    ap.add_argument("--memory-secs", type=int, default=None,
                    help="length of each memory run, one per workload (60; --quick 20; 600 is the issue's 10 minutes)")
    ap.add_argument("--memory-workloads", default=None,
                    help="the memory case's workloads, comma-separated (pty,churn,transfer); one each lets three "
                         "10-minute runs go side by side in separate invocations")
    ap.add_argument("--jobs-count", type=int, default=None,
                    help="jobs per way in the jobs case (1000; --quick 200)")
    ap.add_argument("--jobs-compare-reuse", action="store_true",
                    help="the jobs case also runs sshsoak --compare-reuse (both phases in one run)")
    cfg = ap.parse_args()
    quick = cfg.quick
    cfg.reps = cfg.reps or (1 if quick else 3)
    cfg.reps_long = cfg.reps_long or (1 if quick else 2)
    cfg.sessions = 10
    cfg.window = 10 if quick else 60
    cfg.scale_window = 10 if quick else 60
    cfg.settle = 2 if quick else 5
    cfg.storm_ns = [10] if quick else [10, 50, 100]
    cfg.scale_ns = [int(x) for x in cfg.scale_ns.split(",")] if cfg.scale_ns else ([10] if quick else [10, 50, 100, 200])
    cfg.hs_count = 50 if quick else 100
    cfg.hs_ref_count = 20 if quick else 30
    cfg.tp_bytes = (256 << 20) if quick else (1 << 30)
    cfg.micro_min_time = 0.1 if quick else 0.5
    cfg.nproc = os.cpu_count()
    # churn (issue 12): unpaced at these concurrencies, both sides; then
    # sshsoak alone at (rate, concurrency) for the sustained window.
    cfg.churn_cs = [4] if quick else [1, 4, 16]
    cfg.churn_window = 8 if quick else 20
    cfg.churn_sustained = (100, 16)
    cfg.churn_sustained_secs = cfg.churn_sustained_secs or (10 if quick else 60)
    cfg.churn_max_per_loop = 5000  # bound of each OpenSSH loop, besides the window
    # transfer: 1 and 10 sessions, each direction; OpenSSH moves
    # transfer_ref_bytes split over the same number of streams.
    cfg.transfer_ns = [1, 10]
    cfg.transfer_window = 8 if quick else 20
    cfg.transfer_mb = 16 if quick else 64
    cfg.transfer_ref_bytes = (256 << 20) if quick else (1 << 30)
    cfg.memory_secs = cfg.memory_secs or (20 if quick else 60)
    cfg.memory_workloads = cfg.memory_workloads.split(",") if cfg.memory_workloads else list(memory.WORKLOADS)
    unknown = [w for w in cfg.memory_workloads if w not in memory.WORKLOADS]
    if unknown:
        ap.error(f"--memory-workloads: unknown {','.join(unknown)} (known: {','.join(memory.WORKLOADS)})")
    # jobs (issue 13): W workers, N jobs of 3 commands each way, closed loop;
    # each way bounded by jobs_max_secs besides the count.
    cfg.jobs_workers = 4
    cfg.jobs_count = cfg.jobs_count or (200 if quick else 1000)
    cfg.jobs_max_secs = 120 if quick else 300
    cfg.jobs_compare = cfg.jobs_compare_reuse
    cfg.cases = [c.strip() for c in cfg.only.split(",") if c.strip()]
    for c in cfg.cases:
        if c not in CASES:
            ap.error(f"--only {c}: unknown case (cases: {','.join(ALL)})")
    return cfg


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cfg = parse_args()
    workdir = cfg.workdir or tempfile.mkdtemp(prefix="sshsoak-bench-work-")
    os.makedirs(workdir, exist_ok=True)
    t_start = time.monotonic()
    results = {"machine": machine_info(), "quick": cfg.quick, "reps": cfg.reps, "reps_long": cfg.reps_long,
               "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    log(f"machine: {results['machine']}; work dir {workdir}")
    env = types.SimpleNamespace(sshd=None, workdir=workdir)
    try:
        env.sshd = Sshd()  # default MaxStartups 10:30:100, as on a real server
        for c in cfg.cases:
            t0 = time.monotonic()
            log(f"case {c} ...")
            results[c] = CASES[c](cfg, env)
            results.setdefault("case_secs", {})[c] = round(time.monotonic() - t0, 1)
    finally:
        leftovers = [p for p in LIVE if p.poll() is None]
        if leftovers:
            log(f"stopping {len(leftovers)} leftover children by PID")
            stop_pids(leftovers, sig=signal.SIGKILL)
        if env.sshd:
            env.sshd.cleanup()
        results["total_secs"] = round(time.monotonic() - t_start, 1)
        results["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        with open(cfg.out, "w") as f:
            json.dump(results, f, indent=2)
        if not cfg.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(report.render_table(results))
    print(report.footer(results, cfg.out))
