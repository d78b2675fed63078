"""The printed table: one row per figure, sshsoak beside OpenSSH and the
target, from the results dict that also goes to bench-results.json. One
function per case, in the order the table shows them."""

HEAD = ("case", "metric", "sshsoak", "OpenSSH", "target", "")


def fmt(s, unit="", digits=2):
    if s is None:
        return "-"
    if isinstance(s, dict):
        return f"{s['median']:.{digits}f}{unit} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"
    return f"{s}{unit}"


def ok(b):
    return "" if b is None else ("PASS" if b else "MISS")


def footprint_rows(f, row):
    s, o = f["sshsoak"], f["openssh"]
    row("footprint 10 idle", "PSS MB", fmt(s["pss_mb"]), fmt(o["pss_mb"]), "<= 12",
        ok(s["pss_mb"]["median"] <= 12))
    row("", "RSS MB", fmt(s["rss_mb"]), fmt(o["rss_mb"]), "<= 70", ok(s["rss_mb"]["median"] <= 70))
    row("", "CPU % 1 core", fmt(s["cpu_pct"], digits=3), fmt(o["cpu_pct"], digits=3), "", "")


def workload_rows(f, row):
    s, o = f["sshsoak"], f["openssh"]
    row("workload 10 medium", "CPU % 1 core", fmt(s["cpu_pct"], digits=3), fmt(o["cpu_pct"], digits=3),
        "<= 0.3", ok(s["cpu_pct"]["median"] <= 0.3))
    row("", "PSS MB", fmt(s["pss_mb"]), fmt(o["pss_mb"]), "", "")
    row("", "RSS MB", fmt(s["rss_mb"]), fmt(o["rss_mb"]), "", "")


def storm_rows(storm, row):
    def drops(x):
        return f"drops {x['drop_connection']}"

    for n, v in storm.items():
        s, o = v["sshsoak"], v["openssh"]
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


def handshake_rows(h, row):
    row("handshake", "client CPU ms/cycle", fmt(h["sshsoak"]["cpu_ms_per_cycle"]),
        "c25519 " + fmt(h["openssh_curve25519"]["cpu_ms_per_cycle"]), "<= 2",
        ok(h["sshsoak"]["cpu_ms_per_cycle"]["median"] <= 2))
    row("", "", "", "default " + fmt(h["openssh_default"]["cpu_ms_per_cycle"]), "", "")
    row("", "connections/s", fmt(h["sshsoak"]["conn_per_s"], digits=1),
        "c25519 " + fmt(h["openssh_curve25519"]["conn_per_s"], digits=1), "", "")
    row("", "", "", "default " + fmt(h["openssh_default"]["conn_per_s"], digits=1), "", "")


def throughput_rows(t, row):
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


def scale_rows(scale, row):
    for n, v in scale.items():
        lost_ok = not v["events_lost"]
        row(f"scale N={n}", "PSS MB/session", f"{v['pss_per_session_mb']:.3f}", "-", "flat or falling", "")
        row("", "CPU %/session", f"{v['cpu_pct_per_session']:.4f}", "-", "flat or falling", "")
        row("", "supervisor CPU %", f"{v['focus_cpu_pct']:.3f}", "-", "", "")
        row("", "events/s", f"{v['events_per_s']}", "-", "", "")
        row("", "events lost / abnormal", f"lost {'yes' if v['events_lost'] else 0} abnormal {v['abnormal_ends']}", "-", "0 / 0",
            ok(lost_ok and v["abnormal_ends"] == 0))
    ns = list(scale.keys())
    if len(ns) > 1:
        first, last = scale[ns[0]], scale[ns[-1]]
        row("scale trend", "per-session N_max/N_min", f"PSS {last['pss_per_session_mb'] / first['pss_per_session_mb']:.2f}x "
            f"CPU {last['cpu_pct_per_session'] / max(first['cpu_pct_per_session'], 1e-9):.2f}x", "-", "<= ~1", "")


def micro_rows(micro, row):
    for name, v in micro.items():
        row("micro", name, f"{v['items_per_s']:,}/s ({v['ns_per_item']} ns)", "-", "", "")


# The table's order (not the order the cases run in).
ROWS = [("footprint", footprint_rows), ("workload", workload_rows), ("storm", storm_rows),
        ("handshake", handshake_rows), ("throughput", throughput_rows), ("scale", scale_rows),
        ("micro", micro_rows)]


def render_table(r):
    rows = []

    def row(case, metric, mine, ref, target, verdict=""):
        rows.append((case, metric, mine, ref, target, verdict))

    for case, rows_of in ROWS:
        if case in r:
            rows_of(r[case], row)
    widths = [max(len(str(x[i])) for x in rows + [HEAD]) for i in range(6)]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(HEAD, widths)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(c).ljust(w) for c, w in zip(x, widths)) for x in rows]
    return "\n".join(lines)


def footer(results, out_path):
    m = results["machine"]
    return (f"\nmachine: {m['nproc']} x {m['cpu_model']}, "
            f"kernel {m['kernel']}, load {' '.join(m['loadavg'])} at start, "
            f"{' '.join(results['loadavg_end'])} at end; {m['openssh']}; "
            f"libssh2 {m['libssh2']}\n"
            f"total {results['total_secs']} s; per case {results.get('case_secs')}; JSON: {out_path}")
