#!/usr/bin/python3
"""The relay-cost bench (issue 16): the direct path and sshsoak-proxy with no
fault in force, side by side in one run, on loopback.

1. Added latency per hop: round trips of a 64-byte request / response to a
   TCP echo server (its own process), direct, through the relay and through
   socat (the reference: a plain user-space relay), interleaved in blocks;
   p50 / p99 of each and their difference from direct.
2. Throughput: a bulk transfer to a discarding server (its own process),
   direct, through the relay and through socat, MB/s; each relay's CPU per
   MB from /proc.
3. The real workload: `sshsoak --workload transfer` against the embedded sshd,
   direct and with a fault that is never in force (the relay in the path),
   MB/s of the verified rounds, the agent's CPU per MB (transfer_round
   cpu_ms) beside the relay's (from /proc).

Run by scripts/bench-relay.sh; docs/benchmarks.md, "Issue 16", "Relay cost".
"""
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "build/bin"
ROUND_TRIPS = int(os.environ.get("ROUND_TRIPS", "20000"))
BULK_MB = int(os.environ.get("BULK_MB", "1000"))
TRANSFER_SECS = int(os.environ.get("TRANSFER_SECS", "10"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_secs(pid, children=False):
    """utime + stime (and the reaped children's, for socat's fork per connection)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def echo_server(sock):
    while True:
        c, _ = sock.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
        c.close()


def sink_server(sock):
    buf = bytearray(1 << 20)
    while True:
        c, _ = sock.accept()
        while c.recv_into(buf):
            pass
        c.close()


class Proxy:
    """sshsoak-proxy for the given targets, as the supervisor starts it."""

    def __init__(self, targets, faults=()):
        rep_r, rep_w = os.pipe()
        cfg_r, cfg_w = os.pipe()

        def fds():
            os.dup2(rep_w, 3)
            os.dup2(cfg_r, 4)

        self.p = subprocess.Popen([f"{BIN}/sshsoak-proxy", "relay"], preexec_fn=fds, pass_fds=(3, 4), close_fds=True)
        os.close(rep_w)
        os.close(cfg_r)
        self.cfg = cfg_w
        self.rep = os.fdopen(rep_r)
        config = {"start_mono_ns": time.monotonic_ns(), "faults": list(faults),
                  "sessions": [{"id": i, "host": "127.0.0.1", "port": p} for i, p in enumerate(targets)]}
        os.write(cfg_w, (json.dumps(config) + "\n").encode())
        ready = json.loads(self.rep.readline())
        self.ports = ready["ports"]

    def stop(self):
        os.close(self.cfg)
        self.p.wait(10)
        self.rep.close()


class Socat:
    """The reference relay: socat, one process per connection (fork), a
    64 KiB buffer, read/write through user space, TCP_NODELAY both sides."""

    def __init__(self, targets):
        self.procs, self.ports = [], []
        for t in targets:
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()
            self.procs.append(subprocess.Popen(
                ["socat", "-b", "65536", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,nodelay",
                 f"TCP:127.0.0.1:{t},nodelay"], stdin=subprocess.DEVNULL))
            self.ports.append(port)
        deadline = time.monotonic() + 10
        for port in self.ports:
            while True:
                try:
                    with open("/proc/net/tcp") as f:
                        if any(f":{port:04X} 00000000:0000 0A" in line for line in f):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"socat did not listen on {port}")
                time.sleep(0.02)

    def cpu(self, i):
        return cpu_secs(self.procs[i].pid, children=True)

    def stop(self):
        for p in self.procs:
            p.terminate()
            p.wait(10)


def percentile(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def round_trips(port, n):
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * 64
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        c.sendall(msg)
        got = 0
        while got < 64:
            got += len(c.recv(64 - got))
        out.append((time.perf_counter_ns() - t0) / 1000.0)
    c.close()
    return out


def bulk(port, mb):
    c = socket.create_connection(("127.0.0.1", port))
    chunk = b"\0" * (1 << 20)
    t0 = time.perf_counter()
    for _ in range(mb):
        c.sendall(chunk)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)  # the sink closes once it has read everything
    secs = time.perf_counter() - t0
    c.close()
    return mb * 1.048576 / secs  # MB (10^6 B) per second


def sshsoak_transfer(extra, workdir, name):
    log = os.path.join(workdir, name + ".jsonl")
    args = [f"{BIN}/sshsoak", "--sessions", "1", "--duration-secs", str(TRANSFER_SECS), "--workload", "transfer",
            "--transfer-mb", "64", "--min-throughput-mbps", "0", "--max-cpu-pct", "1000", "--warmup-secs", "0",
            "--log-path", log, "--html", os.path.join(workdir, name + ".html")] + extra
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    proxy_cpu = 0.0
    while p.poll() is None:
        # The relay's CPU, read while it lives (it exits with the run).
        try:
            for child in open(f"/proc/{p.pid}/task/{p.pid}/children").read().split():
                if "sshsoak-proxy" in open(f"/proc/{child}/cmdline").read():
                    proxy_cpu = max(proxy_cpu, cpu_secs(int(child)))
        except OSError:
            pass
        time.sleep(0.1)
    rounds = [json.loads(l) for l in open(log) if '"transfer_round"' in l]
    rounds = [r for r in rounds if r.get("event") == "transfer_round"]
    mb = sum(r["bytes"] for r in rounds) / 1e6
    secs = sum(r["ms"] for r in rounds) / 1000.0
    agent_cpu = sum(r["cpu_ms"] for r in rounds) / 1000.0
    return {"rounds": len(rounds), "mb": mb, "mb_per_sec": mb / secs if secs else 0,
            "agent_cpu_ms_per_mb": 1000 * agent_cpu / mb if mb else None,
            "proxy_cpu_ms_per_mb": 1000 * proxy_cpu / mb if mb and proxy_cpu else None}


def main():
    results = {}
    echo_sock, sink_sock = listener(), listener()
    echo = multiprocessing.Process(target=echo_server, args=(echo_sock,), daemon=True)
    sink = multiprocessing.Process(target=sink_server, args=(sink_sock,), daemon=True)
    echo.start()
    sink.start()
    echo_port, sink_port = echo_sock.getsockname()[1], sink_sock.getsockname()[1]
    proxy = Proxy([echo_port, sink_port], faults=["latency=100ms@1000m"])  # never in force
    socat = Socat([echo_port, sink_port])
    try:
        direct, relayed, socated = [], [], []
        blocks = 10
        for _ in range(blocks):
            direct += round_trips(echo_port, ROUND_TRIPS // blocks)
            relayed += round_trips(proxy.ports[0], ROUND_TRIPS // blocks)
            socated += round_trips(socat.ports[0], ROUND_TRIPS // blocks)
        lat = {k: {"p50_us": percentile(v, 50), "p99_us": percentile(v, 99)} for k, v in
               (("direct", direct), ("relay", relayed), ("socat", socated))}
        for k in ("relay", "socat"):
            lat[k]["added_p50_us"] = lat[k]["p50_us"] - lat["direct"]["p50_us"]
            lat[k]["added_p99_us"] = lat[k]["p99_us"] - lat["direct"]["p99_us"]
        lat["added_p50_us"] = lat["relay"]["added_p50_us"]
        lat["added_p99_us"] = lat["relay"]["added_p99_us"]
        results["latency"] = lat

        mb = BULK_MB * 1.048576
        d = bulk(sink_port, BULK_MB)
        c0 = cpu_secs(proxy.p.pid)
        r = bulk(proxy.ports[1], BULK_MB)
        relay_cpu = cpu_secs(proxy.p.pid) - c0
        c0 = socat.cpu(1)
        so = bulk(socat.ports[1], BULK_MB)
        time.sleep(0.5)  # socat's child for the connection exits and is reaped: its CPU is then counted
        socat_cpu = socat.cpu(1) - c0
        results["bulk"] = {"mb": mb, "direct_mb_per_sec": d, "relay_mb_per_sec": r,
                           "relay_pct_of_direct": 100 * r / d,
                           "relay_cpu_ms_per_mb": 1000 * relay_cpu / mb,
                           "socat_mb_per_sec": so, "socat_pct_of_direct": 100 * so / d,
                           "socat_cpu_ms_per_mb": 1000 * socat_cpu / mb}
    finally:
        proxy.stop()
        socat.stop()
        echo.terminate()
        sink.terminate()

    with tempfile.TemporaryDirectory(prefix="sshsoak-bench-relay-") as workdir:
        results["ssh_transfer_direct"] = sshsoak_transfer([], workdir, "direct")
        results["ssh_transfer_relay"] = sshsoak_transfer(["--fault", "latency=100ms@1000m"], workdir, "relay")
    t_d, t_r = results["ssh_transfer_direct"], results["ssh_transfer_relay"]

    lat, b = results["latency"], results["bulk"]
    print(f"{'relay cost (loopback, 2 cores)':44} {'direct':>12} {'relay':>12} {'socat':>12} {'target':>16}")
    print(f"{'64-B round trip p50 (us)':44} {lat['direct']['p50_us']:12.1f} {lat['relay']['p50_us']:12.1f}"
          f" {lat['socat']['p50_us']:12.1f}")
    print(f"{'64-B round trip p99 (us)':44} {lat['direct']['p99_us']:12.1f} {lat['relay']['p99_us']:12.1f}"
          f" {lat['socat']['p99_us']:12.1f}")
    added = lambda k: f"{lat[k]['added_p50_us']:5.1f} / {lat[k]['added_p99_us']:5.1f}"
    print(f"{'added per hop p50 / p99 (us)':44} {'':12} {added('relay'):>12} {added('socat'):>12}"
          f" {'p99 <= 100':>16}")
    print(f"{'bulk TCP MB/s':44} {b['direct_mb_per_sec']:12.0f} {b['relay_mb_per_sec']:12.0f}"
          f" {b['socat_mb_per_sec']:12.0f} {'>= 90 %':>16}"
          f"  ({b['relay_pct_of_direct']:.0f} % / {b['socat_pct_of_direct']:.0f} %)")
    print(f"{'CPU ms per MB (bulk TCP)':44} {'':12} {b['relay_cpu_ms_per_mb']:12.3f} {b['socat_cpu_ms_per_mb']:12.3f}")
    pct = 100 * t_r["mb_per_sec"] / t_d["mb_per_sec"] if t_d["mb_per_sec"] else 0
    print(f"{'ssh transfer MB/s (sshsoak, 1 session)':44} {t_d['mb_per_sec']:12.1f} {t_r['mb_per_sec']:12.1f}"
          f" {'>= 90 %':>16}  ({pct:.0f} %)")
    fmt = lambda v: f"{v:12.3f}" if v is not None else f"{'n/a':>12}"
    print(f"{'agent CPU ms per MB (ssh transfer)':44} {fmt(t_d['agent_cpu_ms_per_mb'])} {fmt(t_r['agent_cpu_ms_per_mb'])}")
    print(f"{'relay CPU ms per MB (ssh transfer)':44} {'':12} {fmt(t_r['proxy_cpu_ms_per_mb'])}"
          f" {'< agent':>16}")
    results["ssh_transfer_relay_pct_of_direct"] = pct
    out = os.environ.get("OUT", "bench-relay-results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"\n(all figures: {out})")


if __name__ == "__main__":
    main()
