"""One sshsoak run against the bench sshd: started by PID, its JSONL log read
as it grows, stopped with SIGTERM (clean shutdown, summary line)."""
import json
import os
import signal
import subprocess
import time

from .common import Side, spawn


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

