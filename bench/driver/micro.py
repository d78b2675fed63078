"""micro: Google Benchmark of the supervisor's hot path and the token bucket
(sshsoak-bench-hotpath), and of its cost per job of --workload jobs
(sshsoak-bench-jobs: queue, runJob written to a pipe, jobResult read back,
rollup; issue 13's target is under 50 µs), medians of 3 repetitions."""
import json
import os
import subprocess


def run_bench(exe, cfg):
    r = subprocess.run([exe, "--benchmark_format=json", f"--benchmark_min_time={cfg.micro_min_time}",
                        "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{os.path.basename(exe)}: " + r.stderr)
    out = {}
    for b in json.loads(r.stdout)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out[b["run_name"]] = {"items_per_s": round(b["items_per_second"]),
                                  "ns_per_item": round(1e9 / b["items_per_second"], 1)}
    return out


def measure(cfg, env):
    out = run_bench(f"{cfg.bin}/sshsoak-bench-hotpath", cfg)
    jobs = f"{cfg.bin}/sshsoak-bench-jobs"
    if os.path.exists(jobs):  # built with the other benchmarks since issue 13
        out.update(run_bench(jobs, cfg))
    return out
