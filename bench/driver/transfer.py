"""transfer: bulk data, sshsoak's `--workload transfer` (one session and
ten) against OpenSSH moving the same bytes on the same cipher and MAC
(issue 12).

sshsoak, per direction (`--transfer-direction up|down`), from its log only:
transfer_round lines (bytes, ms from the channel's open to the remote
checksum, the agent's cpu_ms; supervisor/log_line.cpp) of rounds that ended
inside the window. MB/s of a session = its bytes / its rounds' ms; the
aggregate is the sessions' sum. Client CPU per GB twice: the agents' own
cpu_ms, and the whole tree (supervisor + agents) from /proc over the window
divided by the bytes moved in it. transfer_corrupt lines are counted (0 is
the target).

OpenSSH, the same number of streams at once, each one `ssh` moving
cfg.transfer_ref_bytes / streams (one connection set-up per stream):
  up    `ssh host '<sshsoak's up command>' < file`  (sha256sum: the same
        remote work) and `ssh host 'cat > /dev/null' < file` (the channel alone);
  down  `ssh host '<sshsoak's down command>'` (urandom | tee | sha256sum,
        the same remote work) and `ssh host cat file` (the channel alone).
The cipher and MAC are what libssh2 negotiated, read from sshsoak's
`connected` line (libssh2 1.10 has no chacha20-poly1305 or AES-GCM:
OpenSSH would otherwise pick one of those). OpenSSH's client does not hash
the data; sshsoak's does (it checks every round end to end): its CPU per GB
includes a SHA-256 of every byte.
"""
import os
import subprocess
import threading
import time
from datetime import datetime

from .common import Window, log, run_timed, ssh_base, target
from .sshsoak_run import SshsoakRun

# What sshsoak runs remotely by default (supervisor/cli.h Options); the
# OpenSSH reference is given the same words, so the remote work is equal.
UP_CMD = "sha256sum"
DOWN_CMD = "exec 3>&1; head -c {bytes} /dev/urandom | tee /dev/fd/3 | sha256sum >&2"


def measure(cfg, env):
    sshd, workdir = env.sshd, env.workdir
    files = []
    out = {}
    try:
        for n in cfg.transfer_ns:
            # The same bytes in all: each of n streams moves 1/n of them.
            per_stream = cfg.transfer_ref_bytes // n
            data = f"{workdir}/transfer-{per_stream}.bin"
            with open(data, "wb") as f:
                subprocess.run(["head", "-c", str(per_stream), "/dev/urandom"], stdout=f, check=True)
            files.append(data)
            for direction in ("up", "down"):
                mine = transfer_sshsoak(cfg, sshd, workdir, n, direction)
                cipher = mine.get("cipher") or "aes128-ctr"
                mac = mine.get("mac") or "hmac-sha2-256"
                same = ["-c", cipher] + ([] if "gcm" in cipher or "chacha" in cipher else ["-m", mac])
                if direction == "up":
                    refs = {"same_command": (UP_CMD, data), "channel_only": ("cat > /dev/null", data)}
                else:
                    refs = {"same_command": (DOWN_CMD.replace("{bytes}", str(per_stream)), None),
                            "channel_only": (f"cat {data}", None)}
                row = {"sshsoak": mine, "cipher_args": " ".join(same)}
                for label, (cmd, stdin_path) in refs.items():
                    row["openssh_" + label] = transfer_openssh(cfg, sshd, n, same, cmd, stdin_path, per_stream)
                out[f"{direction} x{n}"] = row
                log(f"transfer {direction} x{n}: {row}")
    finally:
        for data in files:
            os.unlink(data)
    return out


def ts_of(e):
    return datetime.fromisoformat(e["ts"]).timestamp()


def transfer_sshsoak(cfg, sshd, workdir, n, direction):
    extra = ["--workload", "transfer", "--transfer-direction", direction, "--transfer-mb", str(cfg.transfer_mb)]
    run = SshsoakRun(cfg.bin, sshd, workdir, n, cfg.transfer_window + 120, extra, tag=f"transfer-{direction}-{n}")
    # Warm: every session has finished a round (connect and first open done).
    if not run.wait_for("transfer_round", n, 60):
        run.stop()
        raise RuntimeError(f"transfer {direction} x{n}: fewer than {n} rounds in 60 s; see {run.log_path}")
    w0 = time.time()
    with Window(run.side, sample_secs=5.0, focus=run.proc.pid) as w:
        time.sleep(cfg.transfer_window)
    w1 = time.time()
    rc = run.stop()
    ev = run.events()
    rounds = [e for e in ev if e.get("event") == "transfer_round" and w0 < ts_of(e) <= w1]
    per = {}
    for e in rounds:
        s = per.setdefault(e["session_id"], {"bytes": 0, "ms": 0, "cpu_ms": 0, "rounds": 0})
        s["bytes"] += e["bytes"]
        s["ms"] += e["ms"]
        s["cpu_ms"] += e.get("cpu_ms", 0)
        s["rounds"] += 1
    rates = [s["bytes"] / 1e6 / (s["ms"] / 1000) for s in per.values() if s["ms"] > 0]
    moved = sum(s["bytes"] for s in per.values())
    tree = w.result()
    connected = next((e for e in ev if e.get("event") == "connected"), {})
    return {
        "sessions": n, "sessions_with_rounds": len(per), "rounds": len(rounds), "exit_code": rc,
        "mb_per_s": round(sum(rates), 1),
        "mb_per_s_session_min": round(min(rates), 1) if rates else None,
        "mb_per_s_session_max": round(max(rates), 1) if rates else None,
        # Bytes of the rounds that ended in the window over the window: cruder
        # (a round is counted whole), for comparison.
        "mb_per_s_window": round(moved / 1e6 / tree["secs"], 1),
        "agent_cpu_s_per_gb": round(sum(s["cpu_ms"] for s in per.values()) / moved * 1e6, 3) if moved else None,
        "client_tree_cpu_s_per_gb": round(tree["cpu_pct"] / 100 * tree["secs"] / moved * 1e9, 3) if moved else None,
        "supervisor_cpu_pct": tree.get("focus_cpu_pct"), "client_pss_mb": tree["pss_mb"],
        "corrupt_rounds": sum(1 for e in ev if e.get("event") == "transfer_corrupt"),
        "stalls": sum(1 for e in ev if e.get("event") == "transfer_stall"),
        "transfer_errors": sum(1 for e in ev if e.get("event") == "transfer_error"),
        "window_bytes": rounds[0].get("window_bytes") if rounds else None,
        "write_bytes": rounds[0].get("write_bytes") if rounds else None,
        "cipher": connected.get("cipher"), "mac": connected.get("mac"), "kex": connected.get("kex"),
    }


def transfer_openssh(cfg, sshd, n, cipher_args, command, stdin_path, per_stream):
    """n `ssh host command` at once, each moving per_stream bytes (stdin
    from stdin_path for uploads; stdout to /dev/null for downloads)."""
    argv = ssh_base(sshd, cipher_args) + [target(sshd), command]
    lock = threading.Lock()
    results = []

    def one():
        stdin = open(stdin_path, "rb") if stdin_path else None
        try:
            rc, secs, cpu_s = run_timed(argv, timeout=600, stdin=stdin)
        finally:
            if stdin:
                stdin.close()
        with lock:
            results.append((rc, secs, cpu_s))

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(660)
    wall = time.monotonic() - t0
    ok = [r for r in results if r[0] == 0]
    moved = per_stream * len(ok)
    return {"streams": n, "failed": n - len(ok), "bytes_per_stream": per_stream,
            "mb_per_s": round(sum(per_stream / 1e6 / r[1] for r in ok), 1),
            "mb_per_s_wall": round(moved / 1e6 / wall, 1),
            "client_cpu_s_per_gb": round(sum(r[2] for r in ok) / moved * 1e9, 3) if moved else None}
