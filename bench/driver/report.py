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


def churn_rows(c, row):
    def lat(side, name):
        return (side.get("latency_ms", {}).get(name) or {}).get("p99")

    for n, v in c.get("max", {}).items():
        s, o = v["sshsoak"], v["openssh"]
        row(f"churn C={n} unpaced", "connections/s", f"{s['conn_per_s']}", f"{o['conn_per_s']}", "", "")
        row("", "client CPU ms/conn", f"{s['agent_cpu_ms_per_conn']} (tree {s['client_tree_cpu_ms_per_conn']})",
            f"{o['client_cpu_ms_per_conn']} (c25519)", "<= 2", ok(s["client_tree_cpu_ms_per_conn"] is not None and
                                                                  s["client_tree_cpu_ms_per_conn"] <= 2))
        row("", "p99 ms (total / ssh wall)", f"{lat(s, 'total')}", f"{lat(o, 'ssh_true_wall')}", "", "")
        row("", "failed", f"{s['failed']}", f"{o['failed']}", "0", ok(s["failed"] == 0))
        row("", "sshd CPU ms/conn", f"{s['sshd_cpu_ms_per_conn']}", f"{o['sshd_cpu_ms_per_conn']}", "", "")
        row("", "saturation", s["saturation"], o["saturation"], "", "")
    s = c.get("sustained")
    if s:
        target = s["target_per_s"]
        rate_ok = s["conn_per_s"] >= 0.99 * target and s["failed"] == 0
        cpu = s["client_tree_cpu_ms_per_conn"]
        sat_ok = s["saturation"].startswith("saturated by sshd") and cpu is not None and cpu <= 2
        row(f"churn {target}/s x{s['window_s']:.0f}s C={s['sessions']}", "connections/s achieved",
            f"{s['conn_per_s']} (behind max {s['behind_ms_max']} ms)", "-",
            f">= {target}, 0 failed; or sshd saturates and <= 2 ms/conn", ok(rate_ok or sat_ok))
        kinds = ", ".join(f"{k} {f['count']}" for k, f in s["failures"].items()) or "none"
        row("", "failed (by kind)", f"{s['failed']} ({kinds})", "-", "0", ok(s["failed"] == 0))
        row("", "p99 ms total / service", f"{lat(s, 'total')} / {lat(s, 'service')}", "-", "", "")
        row("", "client CPU ms/conn", f"{s['agent_cpu_ms_per_conn']} (tree {cpu})", "-", "<= 2",
            ok(cpu is not None and cpu <= 2))
        row("", "sshd CPU ms/conn", f"{s['sshd_cpu_ms_per_conn']}", "-", "", "")
        row("", "saturation", s["saturation"], "-", "", "")


def transfer_rows(t, row):
    for key, v in t.items():
        s, same, chan = v["sshsoak"], v["openssh_same_command"], v["openssh_channel_only"]
        n = s["sessions"]
        if n == 1:
            target, good = ">= 0.9x same cmd", s["mb_per_s"] >= 0.9 * same["mb_per_s"]
        else:
            target, good = ">= 50 aggregate", s["mb_per_s"] >= 50
        row(f"transfer {key}", f"MB/s ({v['cipher_args']})",
            f"{s['mb_per_s']} [{s['mb_per_s_session_min']}-{s['mb_per_s_session_max']}]",
            f"same cmd {same['mb_per_s']} / channel {chan['mb_per_s']}", target, ok(good))
        row("", "ratio to same cmd", f"{s['mb_per_s'] / same['mb_per_s']:.2f}x" if same["mb_per_s"] else "-", "", "", "")
        row("", "client CPU s/GB", f"{s['agent_cpu_s_per_gb']} (tree {s['client_tree_cpu_s_per_gb']})",
            f"{same['client_cpu_s_per_gb']} / {chan['client_cpu_s_per_gb']}", "<= OpenSSH same cmd",
            ok(s["client_tree_cpu_s_per_gb"] is not None and same["client_cpu_s_per_gb"] is not None and
               s["client_tree_cpu_s_per_gb"] <= same["client_cpu_s_per_gb"]))
        row("", "corrupt rounds / stalls", f"{s['corrupt_rounds']} / {s['stalls']}", "", "0 corrupt",
            ok(s["corrupt_rounds"] == 0))


def memory_rows(m, row):
    for name, v in m.items():
        slope = v["rss_slope_mb_per_h_max"]
        row(f"memory {name} x{v['sessions']} {v['secs']}s", "RSS slope MB/h (worst agent)", f"{slope}", "-", "< 1",
            ok(slope is not None and slope < 1) if v["secs"] >= 600 else "")
        row("", "PSS slope MB/h / end RSS MB", f"{v['pss_slope_mb_per_h_max']} / {v['rss_end_mb_max']}", "-", "", "")


def jobs_rows(j, row):
    def way(name):
        return j.get(name) or {"error": "not run"}

    def val(name, get):
        v = way(name)
        if "error" in v:
            return "error"
        try:
            x = get(v)
        except (KeyError, TypeError):
            x = None
        return "-" if x is None else x

    def both(a, b, get, la, lb):
        return f"{la} {val(a, get)} / {lb} {val(b, get)}"

    def mine(get):
        return both("sshsoak_reuse_on", "sshsoak_reuse_off", get, "on", "off")

    def ref(get):
        return both("plain_ssh", "control_master", get, "plain", "CM")

    v = j.get("verdicts", {})
    vp, vc = v.get("reuse_on_vs_plain_ssh"), v.get("reuse_on_vs_control_master")
    case = f"jobs {j['workers']} workers x {j['jobs']}"
    row(case, "jobs/s", mine(lambda x: x["jobs_per_sec"]), ref(lambda x: x["jobs_per_sec"]),
        ">= 5x plain ssh", ok(vp["pass"]) if vp else "")
    row("", "reuse on / plain, / CM", f"{vp['ratio']}x / {vc['ratio']}x" if vp and vc else "-", "",
        ">= 0.95x CM (match)", ok(vc["pass"]) if vc else "")
    row("", "job p50/p95 ms", mine(lambda x: f"{x['latency_ms']['p50']}/{x['latency_ms']['p95']}"),
        ref(lambda x: f"{x['latency_ms']['p50']}/{x['latency_ms']['p95']}"), "", "")
    row("", "done / failed", mine(lambda x: f"{x['done']}/{x['failed']}"), ref(lambda x: f"{x['done']}/{x['failed']}"),
        "0 failed", "")
    row("", "connections opened", mine(lambda x: x["connections_opened"]), ref(lambda x: x["connections_opened"]),
        "", "")
    row("", "sshd CPU ms/job", mine(lambda x: x["sshd_cpu_ms_per_job"]), ref(lambda x: x["sshd_cpu_ms_per_job"]),
        "", "")
    row("", "client CPU ms/job", mine(lambda x: x["client_cpu_ms_per_job"]),
        ref(lambda x: x["client_cpu_ms_per_job"]), "", "")
    for mine_name, ref_name, label in (("sshsoak_reuse_on", "plain_ssh", "saturation: on / plain"),
                                       ("sshsoak_reuse_off", "control_master", "saturation: off / CM")):
        row("", label, way(mine_name).get("saturation", "-"), way(ref_name).get("saturation", "-"), "", "")
    for name in ("sshsoak_reuse_on", "sshsoak_reuse_off", "plain_ssh", "control_master"):
        if "error" in way(name):
            row("", f"{name} error", way(name)["error"][:90], "", "", "")
    c = j.get("sshsoak_compare_reuse")
    if c and "error" not in c:
        for ph in ("reuse_off", "reuse_on"):
            x = c[ph]
            row("jobs --compare-reuse" if ph == "reuse_off" else "", f"{ph}: jobs/s, p95 ms, conns, sshd ms",
                f"{x['jobs_per_sec']}, {x['latency_ms']['p95']}, {x['connections_opened']}, {x['server_cpu_ms']}",
                "-", "", "")
    elif c:
        row("jobs --compare-reuse", "error", c["error"][:100], "", "", "")


# The table's order (not the order the cases run in).
ROWS = [("footprint", footprint_rows), ("workload", workload_rows), ("storm", storm_rows),
        ("handshake", handshake_rows), ("throughput", throughput_rows), ("scale", scale_rows),
        ("micro", micro_rows), ("churn", churn_rows), ("transfer", transfer_rows), ("memory", memory_rows),
        ("jobs", jobs_rows)]


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
