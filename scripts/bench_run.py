#!/usr/bin/env python3
"""sshsoak vs plain OpenSSH, side by side (issue 7). Run through scripts/bench.sh.

Everything here talks to one private sshd on 127.0.0.1 that this script
starts (throwaway ed25519 keys in a temp dir) and stops by PID. Every load is
bounded in count and time. Processes are stopped by the PIDs we started.

Resources are measured the same way for both sides, from /proc:
  CPU  = delta of (utime+stime+cutime+cstime) summed over the live process
         tree of the side's roots, plus the wait4() rusage of short-lived
         children this script reaped itself (OpenSSH mux clients), over the
         wall time of the window, in % of one core;
  PSS  = sum of Pss (/proc/PID/smaps_rollup) over the tree, mean of samples;
  RSS  = sum of VmRSS over the tree, mean of samples (double-counts shared pages).
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
SSHD = "/usr/sbin/sshd"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc

def proc_table():
    """pid -> (ppid, cpu ticks incl. reaped children)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        # fields after comm: state ppid ... utime(14) stime(15) cutime(16) cstime(17) (1-based)
        ppid = int(rest[1])
        ticks = int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
        table[int(name)] = (ppid, ticks)
    return table


def tree(roots, table):
    kids = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), [r for r in roots if r in table]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(kids.get(p, []))
    return out


def mem_kb(pids):
    pss = rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                        break
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                        break
        except (OSError, ValueError):
            pass
    return pss, rss


class Side:
    """The processes of one side: roots (callable or list) + reaped extra CPU."""

    def __init__(self, roots):
        self._roots = roots
        self.extra_ticks = 0.0  # from wait4 rusage of children we reaped
        self.lock = threading.Lock()

    def roots(self):
        return self._roots() if callable(self._roots) else list(self._roots)

    def add_rusage(self, ru):
        with self.lock:
            self.extra_ticks += (ru.ru_utime + ru.ru_stime) * TICK

    def cpu_ticks(self, table=None, pids=None):
        table = table or proc_table()
        pids = pids if pids is not None else tree(self.roots(), table)
        with self.lock:
            return sum(table[p][1] for p in pids if p in table) + self.extra_ticks


class Window:
    """Measures a Side over a wall-clock window: CPU delta and mean/peak memory."""

    def __init__(self, side, sample_secs=2.0, focus=None):
        self.side, self.sample_secs, self.focus = side, sample_secs, focus
        self.samples = []
        self._stop = threading.Event()

    def __enter__(self):
        self.t0 = time.monotonic()
        table = proc_table()
        self.c0 = self.side.cpu_ticks(table)
        self.f0 = self._focus_ticks(table)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _focus_ticks(self, table):
        if self.focus is None:
            return 0
        return sum(table[p][1] for p in [self.focus] if p in table)

    def _run(self):
        while not self._stop.wait(self.sample_secs):
            pids = tree(self.side.roots(), proc_table())
            pss, rss = mem_kb(pids)
            self.samples.append((pss, rss, len(pids)))

    def __exit__(self, *exc):
        table = proc_table()
        self.c1 = self.side.cpu_ticks(table)
        self.f1 = self._focus_ticks(table)
        self.t1 = time.monotonic()
        self._stop.set()
        self._thread.join()
        if not self.samples:
            pids = tree(self.side.roots(), table)
            self.samples.append((*mem_kb(pids), len(pids)))

    def result(self):
        secs = self.t1 - self.t0
        pss = [s[0] for s in self.samples]
        rss = [s[1] for s in self.samples]
        r = {
            "secs": round(secs, 2),
            "cpu_pct": round(100.0 * (self.c1 - self.c0) / TICK / secs, 3),
            "pss_mb": round(statistics.mean(pss) / 1024, 2),
            "pss_peak_mb": round(max(pss) / 1024, 2),
            "rss_mb": round(statistics.mean(rss) / 1024, 2),
            "rss_peak_mb": round(max(rss) / 1024, 2),
            "procs": max(s[2] for s in self.samples),
        }
        if self.focus is not None:
            r["focus_cpu_pct"] = round(100.0 * (self.f1 - self.f0) / TICK / secs, 3)
        return r


def wait_rusage(proc, side=None, timeout=120.0, what="child"):
    """Reaps a Popen child with wait4, charging its CPU to side. A child that
    outlives timeout is SIGKILLed and reported: every load here is bounded."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            break
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            _, status, ru = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            raise RuntimeError(f"{what} (pid {proc.pid}: {' '.join(proc.args)[:200]}) still running after {timeout} s: killed")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if side is not None:
        side.add_rusage(ru)
    return proc.returncode, ru


# Long-lived children, so that an error or a signal still stops them (by PID).
LIVE = []


def spawn(argv, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    p = subprocess.Popen(argv, **kw)
    LIVE.append(p)
    return p


def stop_pids(procs, sig=signal.SIGTERM, grace=5.0, side=None):
    """Stops Popen children we started, by PID: sig, then SIGKILL after grace."""
    for p in procs:
        if p.returncode is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for p in procs:
        while p.returncode is None:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                if side is not None:
                    side.add_rusage(ru)
                break
            if time.monotonic() > deadline:
                os.kill(p.pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            time.sleep(0.01)


# ---------------------------------------------------------------- sshd

class Sshd:
    def __init__(self, extra_config=""):
        self.dir = tempfile.mkdtemp(prefix="sshsoak-bench-")
        self.user = "root" if os.geteuid() == 0 else os.environ.get("USER", "root")
        for name in ("host_ed25519", "client_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshsoak-bench",
                            "-f", f"{self.dir}/{name}"], check=True)
        shutil.copy(f"{self.dir}/client_ed25519.pub", f"{self.dir}/authorized_keys")
        os.makedirs("/run/sshd", exist_ok=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        host_pub = open(f"{self.dir}/host_ed25519.pub").read().split()
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        with open(f"{self.dir}/sshd_config", "w") as f:
            f.write(f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.dir}/host_ed25519
PidFile {self.dir}/sshd.pid
AuthorizedKeysFile {self.dir}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowUsers {self.user}
SetEnv SHLVL=1
LogLevel VERBOSE
{extra_config}
""")
        subprocess.run([SSHD, "-t", "-f", f"{self.dir}/sshd_config"], check=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-E", self.log_path, "-f", f"{self.dir}/sshd_config"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as c:
                    if c.recv(4) == b"SSH-":
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not come up: {open(self.log_path).read()}")

    known_hosts = property(lambda self: f"{self.dir}/known_hosts")
    key = property(lambda self: f"{self.dir}/client_ed25519")
    log_path = property(lambda self: f"{self.dir}/sshd.log")

    def log_size(self):
        return os.path.getsize(self.log_path)

    def log_since(self, offset):
        with open(self.log_path, errors="replace") as f:
            f.seek(offset)
            return f.read()

    def drops_since(self, offset):
        text = self.log_since(offset)
        return {"drop_connection": len(re.findall(r"drop connection", text)),
                "maxstartups_throttling": len(re.findall(r"beginning MaxStartups throttling", text))}

    def accepted_since(self, offset):
        return len(re.findall(r"Accepted publickey", self.log_since(offset)))

    def stop(self):
        if self.proc.returncode is not None:
            return
        # The per-connection sshd processes are children of ours (each in a
        # session of its own): stopped by PID, then the listener.
        table = proc_table()
        for pid in sorted(tree([self.proc.pid], table) - {self.proc.pid}):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stop_pids([self.proc])

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- sides

def ssh_base(sshd, extra=()):
    return ["ssh", "-F", "/dev/null", "-p", str(sshd.port), "-i", sshd.key,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR", *extra]


def target(sshd):
    return f"{sshd.user}@127.0.0.1"


def pty_command(intensity="medium", pause_ms=1000):
    """session_agent/workloads/pty_stream.cpp ptyCommand(), verbatim."""
    n = {"low": 5, "medium": 20, "high": 200}[intensity]
    if intensity == "high":
        burst = "yes | head -n 200"
    else:
        burst = f'i=0; while [ $i -lt {n} ]; do i=$((i+1)); echo "sshsoak pty line $i"; done'
    pause = f"{pause_ms // 1000}.{pause_ms % 1000:03d}"
    return ("exec sh -c 'n=0; while :; do n=$((n+1)); echo \"@@sshsoak-begin $n\"; " + burst +
            "; echo \"@@sshsoak-end $n\"; sleep " + pause + "; done'")


POLL_COMMANDS = ["cat /proc/stat", "cat /proc/meminfo", "df -h /"]


class SshsoakRun:
    def __init__(self, bin_dir, sshd, workdir, sessions, duration, extra_args=(), tag="run"):
        self.log_path = f"{workdir}/{tag}.jsonl"
        self.console = open(f"{workdir}/{tag}.console", "w")
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)
        self.argv = [f"{bin_dir}/sshsoak", "--targets", f"127.0.0.1:{sshd.port}", "--user", sshd.user,
                     "--key", sshd.key, "--known-hosts", sshd.known_hosts, "--host-key-policy", "strict",
                     "--sessions", str(sessions), "--duration-secs", str(int(duration)),
                     "--log-path", self.log_path, *extra_args]
        self.sessions = sessions
        self.proc = spawn(self.argv, stdout=self.console, stderr=subprocess.STDOUT)
        self.side = Side(lambda: [self.proc.pid] if self.proc.returncode is None else [])

    def events(self):
        out = []
        try:
            with open(self.log_path) as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line being written
        except FileNotFoundError:
            pass
        return out

    def count(self, event):
        return sum(1 for e in self.events() if e.get("event") == event)

    def wait_for(self, event, n, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshsoak exited early ({self.proc.returncode}); see {self.console.name}")
            if self.count(event) >= n:
                return True
            time.sleep(0.2)
        return False

    def stop(self, timeout=60):
        """SIGTERM (clean shutdown, summary line) by PID; SIGKILL after timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.console.close()
        return self.proc.returncode

    def wait_exit(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.stop()
        self.console.close()
        return self.proc.returncode


class RefSessions:
    """N plain OpenSSH sessions: `ssh -N` clients or ControlMaster + PTY + polls."""

    def __init__(self, sshd, workdir, n, workload, poll_secs=5.0, pty_pause_ms=1000, intensity="medium",
                 alive_interval=15):
        self.sshd, self.n, self.workload, self.poll_secs = sshd, n, workload, poll_secs
        self.long = []       # Popen of long-lived clients (masters, ssh -N, ssh -tt)
        self.transient = []  # Popen of mux clients being run
        self.lock = threading.Lock()
        self.side = Side(self._roots)
        self.stop_evt = threading.Event()
        self.threads = []
        self.poll_failures = 0
        self.polls = 0
        off = sshd.log_size()
        base = ssh_base(sshd, ["-o", f"ServerAliveInterval={alive_interval}"])
        self.socks = []
        for i in range(n):
            if workload:
                sock = f"{workdir}/mux-{i}"
                self.socks.append(sock)
                argv = base + ["-N", "-o", "ControlMaster=yes", "-o", "ControlPersist=no", "-S", sock,
                               target(sshd)]
            else:
                argv = base + ["-N", target(sshd)]
            self.long.append(spawn(argv))
            if (i + 1) % 5 == 0:  # the same pacing as sshsoak's token bucket (5 at once, 5/s)
                time.sleep(1.0)
        deadline = time.monotonic() + 30
        while sshd.accepted_since(off) < n and time.monotonic() < deadline:
            time.sleep(0.1)
        self.connected = sshd.accepted_since(off)
        if workload:
            for sock in self.socks:
                while not os.path.exists(sock) and time.monotonic() < deadline:
                    time.sleep(0.05)
            cmd = pty_command(intensity, pty_pause_ms)
            for i, sock in enumerate(self.socks):
                self.long.append(spawn(ssh_base(sshd, ["-tt", "-S", sock]) + [target(sshd), cmd]))
                t = threading.Thread(target=self._poller, args=(i, sock), daemon=True)
                t.start()
                self.threads.append(t)

    def _roots(self):
        with self.lock:
            return [p.pid for p in self.long + self.transient if p.returncode is None]

    def _poller(self, i, sock):
        # Sessions' schedules spread over the interval, as agents' connect
        # times spread theirs.
        next_t = time.monotonic() + (i * self.poll_secs / self.n)
        while not self.stop_evt.wait(max(0.0, next_t - time.monotonic())):
            next_t += self.poll_secs
            for cmd in POLL_COMMANDS:
                p = subprocess.Popen(ssh_base(self.sshd, ["-S", sock]) + [target(self.sshd), cmd],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                with self.lock:
                    self.transient.append(p)
                rc, _ = wait_rusage(p, self.side)
                with self.lock:
                    self.transient.remove(p)
                    self.polls += 1
                    self.poll_failures += rc != 0

    def stop(self):
        self.stop_evt.set()
        for t in self.threads:
            t.join(30)
        stop_pids(self.long, side=self.side)


# ---------------------------------------------------------------- helpers

def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(q / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def summarize(reps, key):
    vals = [r[key] for r in reps if r.get(key) is not None]
    if not vals:
        return None
    return {"median": round(statistics.median(vals), 3), "min": round(min(vals), 3),
            "max": round(max(vals), 3), "n": len(vals)}


def machine_info():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "loadavg": open("/proc/loadavg").read().split()[:3],
            "openssh": subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
            "libssh2": libssh2_version()}


def libssh2_version():
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libssh2-1"], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def settle(secs):
    time.sleep(secs)


# ---------------------------------------------------------------- cases

def case_footprint(cfg, sshd, workdir, workload):
    """10 sessions, idle (keepalive only) or medium workload: CPU, PSS, RSS of each side."""
    name = "workload" if workload else "footprint"
    n, secs = cfg.sessions, cfg.window
    sides = {"sshsoak": [], "openssh": []}
    for rep in range(cfg.reps_long):
        for side in ("sshsoak", "openssh"):  # alternating
            if side == "sshsoak":
                extra = [] if workload else ["--pty-interval-secs", "3600", "--poll-interval-secs", "3600"]
                run = SshsoakRun(cfg.bin, sshd, workdir, n, secs + 90, extra, tag=f"{name}-{rep}")
                if not run.wait_for("connected", n, 60):
                    raise RuntimeError(f"{name}: not all {n} sessions connected; see {run.log_path}")
                settle(cfg.settle)
                with Window(run.side, focus=run.proc.pid) as w:
                    time.sleep(secs)
                res = w.result()
                run.stop()
                ev = run.events()
                res["exec_polls"] = sum(1 for e in ev if e.get("event") == "exec_poll")
                res["pty_cycles"] = sum(1 for e in ev if e.get("event") == "pty_cycle")
            else:
                ref = RefSessions(sshd, workdir, n, workload)
                if ref.connected < n:
                    ref.stop()
                    raise RuntimeError(f"{name}: only {ref.connected}/{n} OpenSSH clients connected")
                settle(cfg.settle)
                with Window(ref.side) as w:
                    time.sleep(secs)
                res = w.result()
                ref.stop()
                if workload:
                    res["exec_polls"] = ref.polls // 3
                    res["poll_failures"] = ref.poll_failures
            log(f"{name} rep {rep + 1} {side}: {res}")
            sides[side].append(res)
    return {side: {"reps": reps, **{k: summarize(reps, k) for k in ("cpu_pct", "pss_mb", "rss_mb")}}
            for side, reps in sides.items()}


def case_storm(cfg, workdir, bench_sshd_config):
    out = {}
    for n in cfg.storm_ns:
        sshd = Sshd(bench_sshd_config)  # a fresh log and no leftovers per N
        try:
            out[str(n)] = {"sshsoak": storm_sshsoak(cfg, sshd, workdir, n),
                           "openssh": storm_openssh(cfg, sshd, n),
                           # Burst 8 stays below MaxStartups' 10; 10/s is what
                           # a 2-core loopback sshd takes with no drop.
                           "sshsoak_bucket_8_10": storm_sshsoak(cfg, sshd, workdir, n, 10.0, 8)}
        finally:
            sshd.cleanup()
        log(f"storm N={n}: {out[str(n)]}")
    return out


def storm_sshsoak(cfg, sshd, workdir, n, rate=None, burst=None):
    # Connecting takes tokens too (5/s by default): the drop comes after the ramp.
    at = int(n / (rate or 5.0)) + 6
    extra = ["--drop", str(at)]
    if rate:
        extra += ["--token-rate", str(rate), "--token-burst", str(burst)]
    run = SshsoakRun(cfg.bin, sshd, workdir, n, at + 60, extra, tag=f"storm-{n}-{rate}")
    if not run.wait_for("connected", n, at + 5):
        log(f"storm N={n}: only {run.count('connected')} connected before the drop")
    off = sshd.log_size()
    run.wait_for("disconnect_injected", 1, 30)
    t_drop = time.monotonic()
    ok = run.wait_for("reconnected", n, 45)
    took = time.monotonic() - t_drop
    run.stop()
    ev = run.events()
    rec = [e for e in ev if e.get("event") == "reconnected"]
    firsts = {}
    for e in rec:
        firsts.setdefault(e["session_id"], e["elapsed_ms"])
    el = list(firsts.values())
    summary = next((e for e in ev if e.get("event") == "summary"), {})
    return {"back": len(firsts), "failed": n - len(firsts), "all_back": ok,
            "p50_ms": pct(el, 50), "p95_ms": pct(el, 95), "max_ms": max(el) if el else None,
            "observed_all_back_s": round(took, 2) if ok else None,
            "reconnect_failed_events": sum(1 for e in ev if e.get("event") == "reconnect_failed"),
            "abnormal_ends": summary.get("abnormal_ends"), **sshd.drops_since(off)}


def storm_openssh(cfg, sshd, n):
    base = ssh_base(sshd, ["-o", "ConnectTimeout=15"])
    # Established first, paced (not part of the measurement).
    idle = []
    off = sshd.log_size()
    for i in range(n):
        idle.append(spawn(base + ["-N", "-o", "ServerAliveInterval=15", target(sshd)]))
        if (i + 1) % 5 == 0:
            time.sleep(0.5)
    deadline = time.monotonic() + 60
    while sshd.accepted_since(off) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    off = sshd.log_size()
    stop_pids(idle, sig=signal.SIGKILL)  # the drop
    t0 = time.monotonic()
    procs = [spawn(base + [target(sshd), "true"]) for _ in range(n)]
    times, fails = [], 0
    remaining = list(procs)
    while remaining:
        for p in list(remaining):
            if p.poll() is not None:
                remaining.remove(p)
                if p.returncode == 0:
                    times.append((time.monotonic() - t0) * 1000)
                else:
                    fails += 1
        if time.monotonic() - t0 > 60:
            stop_pids(remaining, sig=signal.SIGKILL)
            fails += len(remaining)
            break
        time.sleep(0.005)
    return {"back": len(times), "failed": fails, "all_back": fails == 0,
            "p50_ms": round(pct(times, 50), 1) if times else None,
            "p95_ms": round(pct(times, 95), 1) if times else None,
            "max_ms": round(max(times), 1) if times else None, **sshd.drops_since(off)}


def case_handshake(cfg, sshd):
    res = {"sshsoak": [], "openssh_curve25519": [], "openssh_default": []}
    common = ["--host", "127.0.0.1", "--port", str(sshd.port), "--user", sshd.user, "--key", sshd.key,
              "--known-hosts", sshd.known_hosts]
    for rep in range(cfg.reps):
        r = subprocess.run([f"{cfg.bin}/sshsoak-bench-client", "handshake", "--count", str(cfg.hs_count),
                            *common], capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("bench client: " + r.stderr)
        res["sshsoak"].append(json.loads(r.stdout))
        for label, extra in (("openssh_curve25519", ["-o", "KexAlgorithms=curve25519-sha256"]),
                             ("openssh_default", [])):
            cpu = 0.0
            t0 = time.monotonic()
            argv = ssh_base(sshd, extra) + [target(sshd), "true"]
            for _ in range(cfg.hs_ref_count):
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                rc, ru = wait_rusage(p)
                if rc != 0:
                    raise RuntimeError(f"ssh true failed ({rc})")
                cpu += (ru.ru_utime + ru.ru_stime) * 1000
            secs = time.monotonic() - t0
            res[label].append({"cycles": cfg.hs_ref_count, "cpu_ms_per_cycle": round(cpu / cfg.hs_ref_count, 3),
                               "conn_per_s": round(cfg.hs_ref_count / secs, 2)})
        log(f"handshake rep {rep + 1}: " + json.dumps({k: v[-1] for k, v in res.items()}))
    return {k: {"reps": v, "cpu_ms_per_cycle": summarize(v, "cpu_ms_per_cycle"),
                "conn_per_s": summarize(v, "conn_per_s")} for k, v in res.items()}


def case_throughput(cfg, sshd):
    """One exec channel reading tp_bytes. sshsoak twice: with ExecTask's read
    pattern (stdout then stderr every turn, what the agent does) and stdout
    only; OpenSSH with the cipher + MAC libssh2 negotiated, and its default."""
    res = {"sshsoak": [], "sshsoak_stdout_only": [], "openssh_same_cipher": [], "openssh_default": []}
    common = ["--host", "127.0.0.1", "--port", str(sshd.port), "--user", sshd.user, "--key", sshd.key,
              "--known-hosts", sshd.known_hosts, "--bytes", str(cfg.tp_bytes)]
    for rep in range(cfg.reps):
        for label, flag in (("sshsoak", "1"), ("sshsoak_stdout_only", "0")):
            r = subprocess.run([f"{cfg.bin}/sshsoak-bench-client", "throughput", "--read-stderr", flag, *common],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError("bench client: " + r.stderr)
            res[label].append(json.loads(r.stdout))
        mine = res["sshsoak"][-1]
        same = ["-c", mine["cipher"]]
        if "gcm" not in mine["cipher"] and "chacha" not in mine["cipher"]:
            same += ["-m", mine["mac"]]
        for label, extra in (("openssh_same_cipher", same), ("openssh_default", [])):
            t0 = time.monotonic()
            p = subprocess.Popen(ssh_base(sshd, extra) + [target(sshd), f"head -c {cfg.tp_bytes} /dev/zero"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rc, ru = wait_rusage(p, timeout=300, what="ssh head")
            secs = time.monotonic() - t0
            if rc != 0:
                raise RuntimeError(f"ssh head failed ({rc})")
            res[label].append({"mb_per_s": round(cfg.tp_bytes / 1e6 / secs, 1),
                               "client_cpu_ms": round((ru.ru_utime + ru.ru_stime) * 1000, 1),
                               "cipher": " ".join(extra) or "default", "wall_s": round(secs, 3)})
        log(f"throughput rep {rep + 1}: " + json.dumps({k: v[-1] for k, v in res.items()}))
    return {k: {"reps": v, "mb_per_s": summarize(v, "mb_per_s"), "client_cpu_ms": summarize(v, "client_cpu_ms")}
            for k, v in res.items()}


def case_scale(cfg, workdir, bench_sshd_config):
    out = {}
    for n in cfg.scale_ns:
        sshd = Sshd(bench_sshd_config)
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
    from datetime import datetime
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


def case_micro(cfg):
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


# ---------------------------------------------------------------- table

def fmt(s, unit="", digits=2):
    if s is None:
        return "-"
    if isinstance(s, dict):
        return f"{s['median']:.{digits}f}{unit} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"
    return f"{s}{unit}"


def render_table(r):
    rows = []

    def row(case, metric, mine, ref, target, verdict=""):
        rows.append((case, metric, mine, ref, target, verdict))

    def ok(b):
        return "" if b is None else ("PASS" if b else "MISS")

    if "footprint" in r:
        f = r["footprint"]
        s, o = f["sshsoak"], f["openssh"]
        row("footprint 10 idle", "PSS MB", fmt(s["pss_mb"]), fmt(o["pss_mb"]), "<= 12",
            ok(s["pss_mb"]["median"] <= 12))
        row("", "RSS MB", fmt(s["rss_mb"]), fmt(o["rss_mb"]), "<= 70", ok(s["rss_mb"]["median"] <= 70))
        row("", "CPU % 1 core", fmt(s["cpu_pct"], digits=3), fmt(o["cpu_pct"], digits=3), "", "")
    if "workload" in r:
        f = r["workload"]
        s, o = f["sshsoak"], f["openssh"]
        row("workload 10 medium", "CPU % 1 core", fmt(s["cpu_pct"], digits=3), fmt(o["cpu_pct"], digits=3),
            "<= 0.3", ok(s["cpu_pct"]["median"] <= 0.3))
        row("", "PSS MB", fmt(s["pss_mb"]), fmt(o["pss_mb"]), "", "")
        row("", "RSS MB", fmt(s["rss_mb"]), fmt(o["rss_mb"]), "", "")
    if "storm" in r:
        for n, v in r["storm"].items():
            s, o = v["sshsoak"], v["openssh"]
            drops = lambda x: f"drops {x['drop_connection']}"
            row(f"storm N={n}", "back / failed", f"{s['back']}/{s['failed']}", f"{o['back']}/{o['failed']}",
                "100 % back", ok(s["failed"] == 0))
            row("", "p50/p95/max ms", f"{s['p50_ms']}/{s['p95_ms']}/{s['max_ms']}",
                f"{o['p50_ms']}/{o['p95_ms']}/{o['max_ms']}",
                "p95 <= 1000" if n == "10" else ("max <= 15000" if n == "100" else ""),
                ok(s["p95_ms"] is not None and s["p95_ms"] <= 1000) if n == "10" else
                (ok(s["max_ms"] is not None and s["max_ms"] <= 15000) if n == "100" else ""))
            row("", "MaxStartups drops", drops(s), drops(o), "0", ok(s["drop_connection"] == 0))
            t = v["sshsoak_bucket_8_10"]
            row("", "bucket 8+10/s: back, p50/p95/max", f"{t['back']}/{n} {t['p50_ms']}/{t['p95_ms']}/{t['max_ms']} {drops(t)}",
                "", "", ok(t["failed"] == 0 and t["drop_connection"] == 0 and
                           (t["p95_ms"] <= 1000 if n == "10" else t["max_ms"] <= 15000 if n == "100" else True)))
    if "handshake" in r:
        h = r["handshake"]
        row("handshake", "client CPU ms/cycle", fmt(h["sshsoak"]["cpu_ms_per_cycle"]),
            "c25519 " + fmt(h["openssh_curve25519"]["cpu_ms_per_cycle"]), "<= 2",
            ok(h["sshsoak"]["cpu_ms_per_cycle"]["median"] <= 2))
        row("", "", "", "default " + fmt(h["openssh_default"]["cpu_ms_per_cycle"]), "", "")
        row("", "connections/s", fmt(h["sshsoak"]["conn_per_s"], digits=1),
            "c25519 " + fmt(h["openssh_curve25519"]["conn_per_s"], digits=1), "", "")
        row("", "", "", "default " + fmt(h["openssh_default"]["conn_per_s"], digits=1), "", "")
    if "throughput" in r:
        t = r["throughput"]
        mine = t["sshsoak"]["mb_per_s"]["median"]
        same = t["openssh_same_cipher"]["mb_per_s"]["median"]
        cipher = t["sshsoak"]["reps"][0]["cipher"]
        row("throughput", f"MB/s ({cipher})", fmt(t["sshsoak"]["mb_per_s"], digits=0),
            fmt(t["openssh_same_cipher"]["mb_per_s"], digits=0), ">= 0.8x, > 50",
            ok(mine >= 0.8 * same and mine > 50))
        row("", "ratio / default", f"{mine / same:.2f}x",
            "default " + fmt(t["openssh_default"]["mb_per_s"], digits=0), "", "")
        so = t["sshsoak_stdout_only"]["mb_per_s"]
        row("", "MB/s stdout-only reads", fmt(so, digits=0), f"{so['median'] / same:.2f}x", "", "")
        row("", "client CPU ms", fmt(t["sshsoak"]["client_cpu_ms"], digits=0),
            fmt(t["openssh_same_cipher"]["client_cpu_ms"], digits=0), "", "")
    if "scale" in r:
        for n, v in r["scale"].items():
            lost_ok = not v["events_lost"]
            row(f"scale N={n}", "PSS MB/session", f"{v['pss_per_session_mb']:.3f}", "-", "flat or falling", "")
            row("", "CPU %/session", f"{v['cpu_pct_per_session']:.4f}", "-", "flat or falling", "")
            row("", "supervisor CPU %", f"{v['focus_cpu_pct']:.3f}", "-", "", "")
            row("", "events/s", f"{v['events_per_s']}", "-", "", "")
            row("", "events lost / abnormal", f"lost {'yes' if v['events_lost'] else 0} abnormal {v['abnormal_ends']}", "-", "0 / 0",
                ok(lost_ok and v["abnormal_ends"] == 0))
        ns = list(r["scale"].keys())
        if len(ns) > 1:
            first, last = r["scale"][ns[0]], r["scale"][ns[-1]]
            row("scale trend", "per-session N_max/N_min", f"PSS {last['pss_per_session_mb'] / first['pss_per_session_mb']:.2f}x "
                f"CPU {last['cpu_pct_per_session'] / max(first['cpu_pct_per_session'], 1e-9):.2f}x", "-", "<= ~1", "")
    if "micro" in r:
        for name, v in r["micro"].items():
            row("micro", name, f"{v['items_per_s']:,}/s ({v['ns_per_item']} ns)", "-", "", "")
    widths = [max(len(str(x[i])) for x in rows + [("case", "metric", "sshsoak", "OpenSSH", "target", "")])
              for i in range(6)]
    head = ("case", "metric", "sshsoak", "OpenSSH", "target", "")
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(head, widths)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(x, widths)) for x in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- main

ALL = ["micro", "handshake", "throughput", "footprint", "workload", "storm", "scale"]


class Stopped(Exception):
    pass


def on_signal(signum, _frame):
    raise Stopped(f"signal {signum}")


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="build/bin with sshsoak, sshsoak-agent and the bench binaries")
    ap.add_argument("--quick", action="store_true", help="10 s windows, N=10 only, 1 repetition: to try the script")
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated cases: " + ",".join(ALL))
    ap.add_argument("--reps", type=int, default=None, help="repetitions of the short cases (3; --quick 1)")
    ap.add_argument("--reps-long", type=int, default=None,
                    help="repetitions of the 60-s footprint and workload cases (2, to stay under 20 min; --quick 1)")
    ap.add_argument("--out", default="bench-results.json")
    ap.add_argument("--scale-ns", default=None, help="session counts of the scale case (10,50,100,200)")
    ap.add_argument("--workdir", default=None, help="keep logs here (default: a temp dir, removed)")
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
    cases = [c.strip() for c in cfg.only.split(",") if c.strip()]
    for c in cases:
        if c not in ALL:
            ap.error(f"--only {c}: unknown case (cases: {','.join(ALL)})")
    workdir = cfg.workdir or tempfile.mkdtemp(prefix="sshsoak-bench-work-")
    os.makedirs(workdir, exist_ok=True)
    # Scale holds 200 sessions: sshd's per-source limits must not be what is measured.
    big_sshd = "MaxStartups 100:30:400\nMaxSessions 20\n"
    t_start = time.monotonic()
    results = {"machine": machine_info(), "quick": quick, "reps": cfg.reps, "reps_long": cfg.reps_long,
               "argv": sys.argv, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    log(f"machine: {results['machine']}; work dir {workdir}")
    sshd = None
    try:
        sshd = Sshd()  # default MaxStartups 10:30:100, as on a real server
        for c in cases:
            t0 = time.monotonic()
            log(f"case {c} ...")
            if c == "micro":
                results[c] = case_micro(cfg)
            elif c == "handshake":
                results[c] = case_handshake(cfg, sshd)
            elif c == "throughput":
                results[c] = case_throughput(cfg, sshd)
            elif c in ("footprint", "workload"):
                results[c] = case_footprint(cfg, sshd, workdir, c == "workload")
            elif c == "storm":
                results[c] = case_storm(cfg, workdir, "")
            elif c == "scale":
                results[c] = case_scale(cfg, workdir, big_sshd)
            results.setdefault("case_secs", {})[c] = round(time.monotonic() - t0, 1)
    finally:
        leftovers = [p for p in LIVE if p.poll() is None]
        if leftovers:
            log(f"stopping {len(leftovers)} leftover children by PID")
            stop_pids(leftovers, sig=signal.SIGKILL)
        if sshd:
            sshd.cleanup()
        results["total_secs"] = round(time.monotonic() - t_start, 1)
        results["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        with open(cfg.out, "w") as f:
            json.dump(results, f, indent=2)
        if not cfg.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    table = render_table(results)
    print(table)
    print(f"\nmachine: {results['machine']['nproc']} x {results['machine']['cpu_model']}, "
          f"kernel {results['machine']['kernel']}, load {' '.join(results['machine']['loadavg'])} at start, "
          f"{' '.join(results['loadavg_end'])} at end; {results['machine']['openssh']}; "
          f"libssh2 {results['machine']['libssh2']}")
    print(f"total {results['total_secs']} s; per case {results.get('case_secs')}; JSON: {cfg.out}")


if __name__ == "__main__":
    main()
