"""handshake: the client CPU of one connect + kex + host-key check + auth +
exec `true` + close, sshsoak's SSH code (sshsoak-bench-client) against the
OpenSSH client with curve25519 and with its default kex."""
import json
import subprocess
import time

from .common import log, ssh_base, summarize, target, wait_rusage


def measure(cfg, env):
    sshd = env.sshd
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
