"""footprint and workload: 10 sessions, idle (keepalive only) or under the
medium workload, the CPU, PSS and RSS of each side over the same window."""
import os
import subprocess
import threading
import time

from . import from_binary
from .common import Side, Window, log, settle, spawn, ssh_base, stop_pids, summarize, target, wait_rusage
from .sshsoak_run import SshsoakRun

# The workload both sides run. sshsoak is given them as flags (they are its
# defaults too); the reference runs the agent's own commands for them.
INTENSITY = "medium"
POLL_SECS = 5
PTY_PAUSE_MS = 1000


class RefSessions:
    """N plain OpenSSH sessions: `ssh -N` clients or ControlMaster + PTY + polls."""

    def __init__(self, sshd, workdir, n, workload=None, alive_interval=15):
        """workload: None (idle) or {"pty": command, "polls": [commands], "poll_secs": s}."""
        self.sshd, self.n, self.workload = sshd, n, workload
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
            for i, sock in enumerate(self.socks):
                self.long.append(spawn(ssh_base(sshd, ["-tt", "-S", sock]) + [target(sshd), workload["pty"]]))
                t = threading.Thread(target=self._poller, args=(i, sock), daemon=True)
                t.start()
                self.threads.append(t)

    def _roots(self):
        with self.lock:
            return [p.pid for p in self.long + self.transient if p.returncode is None]

    def _poller(self, i, sock):
        # Sessions' schedules spread over the interval, as agents' connect
        # times spread theirs.
        every = self.workload["poll_secs"]
        next_t = time.monotonic() + (i * every / self.n)
        while not self.stop_evt.wait(max(0.0, next_t - time.monotonic())):
            next_t += every
            for cmd in self.workload["polls"]:
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


def measure_footprint(cfg, env):
    return _run(cfg, env, workload=False)


def measure_workload(cfg, env):
    return _run(cfg, env, workload=True)


def _run(cfg, env, workload):
    name = "workload" if workload else "footprint"
    sshd, workdir = env.sshd, env.workdir
    n, secs = cfg.sessions, cfg.window
    if workload:
        described = from_binary.workloads(cfg.bin, PTY_PAUSE_MS)
        ref_workload = {"pty": described["pty"]["commands"][INTENSITY],
                        "polls": described["exec_poll"]["commands"], "poll_secs": POLL_SECS}
        extra = ["--intensity", INTENSITY, "--poll-interval-secs", str(POLL_SECS),
                 "--pty-interval-secs", f"{PTY_PAUSE_MS / 1000:g}"]
    else:
        ref_workload = None
        extra = ["--pty-interval-secs", "3600", "--poll-interval-secs", "3600"]
    sides = {"sshsoak": [], "openssh": []}
    for rep in range(cfg.reps_long):
        for side in ("sshsoak", "openssh"):  # alternating
            if side == "sshsoak":
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
                ref = RefSessions(sshd, workdir, n, ref_workload)
                if ref.connected < n:
                    ref.stop()
                    raise RuntimeError(f"{name}: only {ref.connected}/{n} OpenSSH clients connected")
                settle(cfg.settle)
                with Window(ref.side) as w:
                    time.sleep(secs)
                res = w.result()
                ref.stop()
                if workload:
                    res["exec_polls"] = ref.polls // len(ref_workload["polls"])
                    res["poll_failures"] = ref.poll_failures
            log(f"{name} rep {rep + 1} {side}: {res}")
            sides[side].append(res)
    return {side: {"reps": reps, **{k: summarize(reps, k) for k in ("cpu_pct", "pss_mb", "rss_mb")}}
            for side, reps in sides.items()}
