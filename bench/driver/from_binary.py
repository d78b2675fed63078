"""What the C++ side defines, read from the binaries rather than copied here,
so that the reference and the figures cannot drift from sshsoak:

- the remote commands of the workloads: `sshsoak-agent --describe-workloads`
  (session_agent/describe.cpp: the agent's own ptyCommand() and
  pollCommands());
- the percentile: `sshsoak percentiles Q...` (sshsoak::percentile, nearest
  rank at floor(n * q), the definition of the summary's p50/p95/max).
"""
import json
import subprocess


def _run_json(argv, stdin_text=None):
    r = subprocess.run(argv, input=stdin_text, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def workloads(bin_dir, pty_pause_ms):
    """{"probe": cmd, "exec_poll": {"commands": [...]},
        "pty": {"pause_ms": N, "commands": {"low": cmd, "medium": cmd, "high": cmd}}}"""
    return _run_json([f"{bin_dir}/sshsoak-agent", "--describe-workloads", "--pty-pause-ms", str(pty_pause_ms)])


def percentiles(bin_dir, values, *quantiles):
    """sshsoak::percentile of integer values at each quantile (0..1), in one
    call: a tuple in the order asked, None for each when there are no values."""
    qs = [str(q) for q in quantiles]
    out = _run_json([f"{bin_dir}/sshsoak", "percentiles", *qs], "".join(f"{int(v)}\n" for v in values))
    # The binary names each figure after the percent ("p50", "p99.9", "p100").
    return tuple(out[f"p{float(q) * 100:g}"] for q in quantiles)


def percentiles_ms(bin_dir, ms_values, *quantiles):
    """The same for fractional milliseconds: counted in whole microseconds
    (the binary takes integers), given back in ms rounded to 0.1 ms, as the
    figures were printed before."""
    us = percentiles(bin_dir, [round(v * 1000) for v in ms_values], *quantiles)
    return tuple(None if v is None else round(v / 1000, 1) for v in us)
