#!/usr/bin/python3
"""A synthetic long-run JSONL log in the issue-14 format, for benchmarking
`sshsoak report`: N sessions for H hours, pty_stats and exec_poll_stats per
session every 60 s, a resource_sample v2 every 10 s (supervisor, agents, the
local sshd's per-connection processes), a checkpoint every 300 s, a few
injected drops, and a summary. Deterministic (seeded).

  bench/gen-long-log.py OUT.jsonl [--hours 24] [--sessions 10] [--leak-agent 3]

With --shard I/N (issue 17) it is shard I of a run of N shards: every line
carries run_id (--run-id), shard and shards, its sessions are the global ids
I*S .. I*S+S-1, reconnect times vary, and the summary carries the
mergeable `histograms` (HdrHistogram V2 compressed, base64) and the counts
`sshsoak report --merge` adds up.
"""
import argparse, base64, datetime, json, random, struct, zlib

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--hours", type=float, default=24)
p.add_argument("--sessions", type=int, default=10)
p.add_argument("--leak-agent", type=int, default=-1, help="this agent's RSS grows 2 MB/h")
p.add_argument("--drops", type=int, default=6)
p.add_argument("--shard", default=None, help="I/N: this log is shard I of N")
p.add_argument("--run-id", default="bench-24h")
a = p.parse_args()
shard = tuple(int(x) for x in a.shard.split("/")) if a.shard else None
rnd = random.Random(14 + (shard[0] if shard else 0))
t0 = datetime.datetime(2026, 11, 23, 0, 0, 0, tzinfo=datetime.timezone.utc)
end = int(a.hours * 3600)
out = open(a.out, "w")


def ts(s):
    return (t0 + datetime.timedelta(seconds=s)).isoformat(timespec="microseconds")


def emit(s, event, session=None, **fields):
    if session is not None:
        session += first
    line = {"ts": ts(s), "session_id": session, "host": "127.0.0.1:2222" if session is not None else None,
            "event": event, "detail": None, "elapsed_ms": None, "attempt": None, "success": True}
    if shard:
        line.update(run_id=a.run_id, shard=shard[0], shards=shard[1])
    line.update(fields)
    out.write(json.dumps(line, separators=(",", ":")) + "\n")


def hist(n, base):
    counts = []
    left = n
    for i in range(8):
        c = left // 2 if i < 7 else left
        left -= c
        if c:
            counts += [base + i * 3, c]
    return {"n": n, "p50": base, "p90": base * 2, "p99": base * 3, "p999": base * 4, "max": base * 5, "counts": counts}


# HdrHistogram's V2 compressed encoding (lowest value 1), as
# supervisor/analysis/histogram_codec.cpp writes it: counts by index.
def hdr_layout(sigfigs, highest=1 << 36):
    mag = (2 * 10 ** sigfigs - 1).bit_length()
    half_mag = mag - 1
    sub = 1 << mag
    buckets, smallest = 1, sub
    while smallest <= highest:
        smallest <<= 1
        buckets += 1
    return half_mag, sub, (buckets + 1) * (sub // 2)


def hdr_index(value, sigfigs):
    half_mag, sub, _ = hdr_layout(sigfigs)
    value = min(value, 1 << 36)
    bucket = (value | (sub - 1)).bit_length() - (half_mag + 1)
    return ((bucket + 1) << half_mag) + (value >> bucket) - (sub // 2)


def zigzag(v):
    z = (v << 1) ^ (v >> 63)
    z &= (1 << 64) - 1
    out = bytearray()
    for _ in range(8):
        b = z & 0x7F
        z >>= 7
        if z == 0:
            out.append(b)
            return out
        out.append(b | 0x80)
    out.append(z & 0xFF)
    return out


def hdr_encode(counts, sigfigs):
    words = bytearray()
    nxt = 0
    for i in sorted(counts):
        if i > nxt:
            words += zigzag(-(i - nxt))
        words += zigzag(counts[i])
        nxt = i + 1
    if not counts:
        words += zigzag(-1)
    plain = struct.pack(">iiiiqqd", 0x1C849313, len(words), 0, sigfigs, 1, 1 << 36, 1.0) + bytes(words)
    z = zlib.compress(plain)
    return base64.b64encode(struct.pack(">ii", 0x1C849314, len(z)) + z).decode()


N = a.sessions
first = shard[0] * N if shard else 0
reconnect_counts = {}   # exact layout (5 figures): reconnect ms by index
echo_counts = {}        # latency layout (2 figures): echo µs by index
emit(0, "run_started", run_id=a.run_id, version="0.1.0", targets=[], embedded_sshd=True, sessions=N,
     duration_secs=end, intensity="default", poll_interval_secs=5, workload="pty", drops=[], fault_commands=[],
     warmup_secs=60, leak_min_fit_secs=600)
agent_pid = {s: 1000 + s for s in range(N)}
for s in range(N):
    emit(0.1, "agent_started", s, pid=agent_pid[s])
    emit(0.5, "connected", s, fds=9, elapsed_ms=300)
drops = sorted(rnd.sample(range(600, end - 600, 10), a.drops))
down = {}
events = []
for d in drops:
    s = rnd.randrange(N)
    events.append((d, s))
checkpoint = 0
last_cycle = {s: 0 for s in range(N)}
for sec in range(1, end + 1):
    for d, s in events:
        if d == sec:
            emit(sec, "disconnect_injected", s)
            emit(sec, "disconnected", s, cause="injected")
            ms = 2000 if not shard else 300 + rnd.randrange(9000)
            reconnect_counts[hdr_index(ms, 5)] = reconnect_counts.get(hdr_index(ms, 5), 0) + 1
            emit(sec + 2, "reconnected", s, elapsed_ms=ms, fds=9)
    if sec % 60 == 0:
        for s in range(N):
            cycles = 12
            last_cycle[s] += cycles
            emit(sec, "pty_stats", s, interval_ms=60000, cycles=cycles, short_cycles=0, bytes=cycles * 4096,
                 lines=cycles * 40, last_cycle=last_cycle[s],
                 latency_us={"cycle": hist(cycles, 900), "echo": hist(cycles * 5, 700)})
            ec = hist(cycles * 5, 700)["counts"]
            for k in range(0, len(ec), 2):
                echo_counts[ec[k]] = echo_counts.get(ec[k], 0) + ec[k + 1]
            emit(sec, "exec_poll_stats", s, interval_ms=60000, polls=12, bytes=12 * 300,
                 latency_us={"rtt": hist(12, 950)}, cpu_busy_pct_max=12.5, mem_used_pct=41.0, disk_used_pct=63.0)
    if sec % 10 == 0:
        h = sec / 3600
        procs = [[1, None, 1.2, 24000 + rnd.randrange(200), 12000, 40, 4, sec * 5, "supervisor", 0, 0]]
        for s in range(N):
            rss = 9000 + rnd.randrange(100) + (2048 * h if s == a.leak_agent else 0)
            procs.append([agent_pid[s], s, 0.3, int(rss), int(rss * 0.6), 12, 2, sec * 2, "agent", 1, 0])
        for s in range(N):
            procs.append([5000 + s, None, 0.2, 7000, 3000, 11, 1, sec, "sshd", 1, 0])
        tot_rss = sum(p[3] for p in procs[:N + 1])
        tot_pss = sum(p[4] for p in procs[:N + 1])
        emit(sec, "resource_sample", total={"cpu_pct": 4.2, "rss_kb": tot_rss, "pss_kb": tot_pss, "fds": 160,
                                            "threads": 24},
             procs=procs, server={"processes": N, "cpu_pct": 2.0, "rss_kb": 70000, "pss_kb": 30000, "fds": 110},
             tcp={"established": 2 * N, "close_wait": 0, "time_wait": 1}, missed=0, pass_ms=3)
    if sec % 300 == 0 and sec < end:
        checkpoint += 1
        emit(sec, "checkpoint", checkpoint=checkpoint, duration_secs=sec, abnormal_ends=0,
             resources={"total": {"cpu_mean_pct": 4.2, "pss_peak_kb": 60000}},
             verdict=[{"criterion": "abnormal_ends", "measured": 0, "threshold": 0, "comparison": "<=", "unit": "",
                       "result": "pass", "note": ""}])
for s in range(N):
    emit(end, "agent_stopped", s)
    emit(end, "agent_exited", s, detail="exit 0")
extra = {}
if shard:
    per = [{"session_id": first + s, "state": "up", "up_at_end": True, "connects": 1,
            "disconnects": sum(1 for _, x in events if x == s), "reconnects": sum(1 for _, x in events if x == s)}
           for s in range(N)]
    extra = dict(sessions=N, sessions_up_at_end=N, interrupts=len(events), reconnects=len(events),
                 reconnect_attempts=len(events), sessions_opened=N + len(events), per_session=per,
                 workload={"name": "pty"},
                 histograms={"reconnect_ms": hdr_encode(reconnect_counts, 5), "echo_us": hdr_encode(echo_counts, 2)})
emit(end, "summary", duration_secs=end, abnormal_ends=0, **extra,
     resources={"total": {"cpu_mean_pct": 4.2, "cpu_mean_after_warmup_pct": 4.2, "pss_peak_kb": 60000}},
     verdict=[{"criterion": "abnormal_ends", "measured": 0, "threshold": 0, "comparison": "<=", "unit": "",
               "result": "pass", "note": ""}])
out.close()
