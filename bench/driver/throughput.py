"""throughput: one exec channel reading cfg.tp_bytes, sshsoak's read pattern
(sshsoak-bench-client) against the OpenSSH client with the same cipher and
with its default."""
import json
import subprocess
import time

from .common import log, ssh_base, summarize, target, wait_rusage


def measure(cfg, env):
    """One exec channel reading tp_bytes. sshsoak twice: with ExecTask's read
    pattern (stdout then stderr every turn, what the agent does) and stdout
    only; OpenSSH with the cipher + MAC libssh2 negotiated, and its default."""
    sshd = env.sshd
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
