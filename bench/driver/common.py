"""What every case uses: /proc process trees and memory, the measuring
Window over a Side, the children we start and stop by PID, the private sshd
and the OpenSSH client's command line, and the machine's description."""
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


class MachineCpu:
    """The whole machine's CPU over a window, from /proc/stat: busy =
    everything but idle and iowait, in cores (2.0 = both cores of a 2-core
    machine busy), so that a bench can say whether it saturated the machine
    and who did (the sides' own CPU beside it)."""

    @staticmethod
    def _read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]) - idle, time.monotonic()

    def __enter__(self):
        self.b0, self.t0 = self._read()
        return self

    def __exit__(self, *exc):
        self.b1, self.t1 = self._read()

    def busy_cores(self):
        return round((self.b1 - self.b0) / TICK / (self.t1 - self.t0), 3)


def run_timed(argv, side=None, timeout=120.0, stdin=None):
    """Runs argv to its end, blocking in wait4 (no polling delay in the
    measured time): (exit code, wall seconds, CPU seconds of it and its
    reaped children). Killed by PID after timeout (a watchdog timer), and
    then reported as exit code -9. stdin: a file to read from (default none)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    timer = threading.Timer(timeout, lambda: os.kill(p.pid, signal.SIGKILL))
    timer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    secs = time.monotonic() - t0
    if side is not None:
        side.add_rusage(ru)
    return p.returncode, secs, ru.ru_utime + ru.ru_stime


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



# ---------------------------------------------------------------- the OpenSSH client

def ssh_base(sshd, extra=()):
    return ["ssh", "-F", "/dev/null", "-p", str(sshd.port), "-i", sshd.key,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "LogLevel=ERROR", *extra]


def target(sshd):
    return f"{sshd.user}@127.0.0.1"


# ---------------------------------------------------------------- helpers

def summarize(reps, key):
    """median [min-max] over the repetitions of a case (statistics.median: an
    even count gives the mean of the middle two). Latency percentiles within
    one run come from sshsoak itself: from_binary.percentiles."""
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
