"""micro: Google Benchmark of the supervisor's hot path and the token bucket
(sshsoak-bench-hotpath), medians of 3 repetitions."""
import json
import subprocess


def measure(cfg, env):
    exe = f"{cfg.bin}/sshsoak-bench-hotpath"
    r = subprocess.run([exe, "--benchmark_format=json", f"--benchmark_min_time={cfg.micro_min_time}",
                        "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("hotpath bench: " + r.stderr)
    data = json.loads(r.stdout)
    out = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") == "median":
            out[b["run_name"]] = {"items_per_s": round(b["items_per_second"]),
                                  "ns_per_item": round(1e9 / b["items_per_second"], 1)}
    return out
