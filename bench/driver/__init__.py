"""sshsoak vs plain OpenSSH, side by side (issue 7). Run through scripts/bench.sh.

Everything here talks to one private sshd on 127.0.0.1 that the driver
starts (throwaway ed25519 keys in a temp dir) and stops by PID. Every load is
bounded in count and time. Processes are stopped by the PIDs we started.

Resources are measured the same way for both sides, from /proc:
  CPU  = delta of (utime+stime+cutime+cstime) summed over the live process
         tree of the side's roots, plus the wait4() rusage of short-lived
         children the driver reaped itself (OpenSSH mux clients), over the
         wall time of the window, in % of one core;
  PSS  = sum of Pss (/proc/PID/smaps_rollup) over the tree, mean of samples;
  RSS  = sum of VmRSS over the tree, mean of samples (double-counts shared pages).

What the C++ side defines is read from the binaries, never copied: the
remote commands of the workloads (`sshsoak-agent --describe-workloads`) and
the percentile (`sshsoak percentiles`); see from_binary.py.

Modules: main (flags, the case list, bench-results.json), one module per
case (micro, handshake, throughput, footprint with workload, storm, scale;
issue 12: churn, transfer, memory; issue 13: jobs), hdr (churn_stats histograms merged),
report (the printed table), common (/proc, processes, the private sshd),
sshsoak_run (one sshsoak run and its JSONL log), from_binary.
Standard library only: runs on Debian's /usr/bin/python3.
"""
