#include "supervisor/analysis/console.h"

#include "supervisor/analysis/workload_model.h"

#include "supervisor/analysis/report.h"
#include "supervisor/analysis/stats.h"

namespace sshsoak {

namespace {

std::string fig(const Json& v) { return v.is_number() ? figureText(v.get<double>()) : "n/a"; }
std::string pfig(const Json& v) { return v.is_number() ? preciseText(v.get<double>()) : "n/a"; }

// A count with its per-job figure: "1200 (2.4/job)".
std::string perJob(const Json& total, const Json& per) {
  return pfig(total) + (per.is_number() ? " (" + pfig(per) + "/job)" : "");
}

// --workload jobs: counts, latencies, reuse, pool closes, failures, and
// the A/B of --compare-reuse side by side.
void printJobs(std::FILE* out, Json& w) {
  std::fprintf(out, "\n== jobs (reuse %s) ==\n", w["reuse"].is_string() ? w["reuse"].get<std::string>().c_str() : "?");
  std::fprintf(out,
               "jobs                  %s submitted: %s done, %s failed, %s aborted, %s cancelled, %s not started, %s lost\n",
               pfig(w["submitted"]).c_str(), pfig(w["done"]).c_str(), pfig(w["failed"]).c_str(), pfig(w["aborted"]).c_str(),
               pfig(w["cancelled"]).c_str(), pfig(w["not_started"]).c_str(), pfig(w["lost"]).c_str());
  std::fprintf(out, "                      %s retried, %s shed, %s rejected\n", pfig(w["retried"]).c_str(),
               pfig(w["shed"]).c_str(), pfig(w["rejected"]).c_str());
  if (w["incomplete"].is_string()) std::fprintf(out, "incomplete            %s\n", w["incomplete"].get<std::string>().c_str());
  std::fprintf(out, "throughput            %s jobs/s over %s s (%s workers)\n", pfig(w["jobs_per_sec"]).c_str(),
               pfig(w["span_secs"]).c_str(), pfig(w["workers"]).c_str());
  std::fprintf(out, "latency (ms)          %-8s %9s %9s %9s %9s\n", "n", "p50", "p95", "p99", "max");
  for (const char* name : JOB_LATENCIES) {
    Json& h = w["latency_ms"][name];
    std::fprintf(out, "  %-19s %-8s %9s %9s %9s %9s\n", name, pfig(h["n"]).c_str(), pfig(h["p50"]).c_str(),
                 pfig(h["p95"]).c_str(), pfig(h["p99"]).c_str(), pfig(h["max"]).c_str());
  }
  std::fprintf(out, "reuse                 rate %s; %s connections opened (%s per hour per worker)\n",
               pfig(w["reuse_rate"]).c_str(), pfig(w["connections_opened"]).c_str(),
               pfig(w["connections_per_hour_per_worker"]).c_str());
  std::fprintf(out, "setup saved           %s ms (%s)\n", pfig(w["setup_saved_ms"]).c_str(),
               w.value("setup_saved_method", "").c_str());
  std::fprintf(out, "pool closes           idle %s, lru %s, dead replaced %s, dropped %s, tainted %s\n",
               pfig(w["idle_closes"]).c_str(), pfig(w["lru_closes"]).c_str(), pfig(w["dead_replaced"]).c_str(),
               pfig(w["dropped_closes"]).c_str(), pfig(w["tainted_closes"]).c_str());
  for (auto& [kind, f] : w["failures"].items()) {
    std::fprintf(out, "  failed %-16s %s  e.g. %s\n", kind.c_str(), pfig(f["count"]).c_str(), f.value("example", "").c_str());
  }
  Json& phases = w["phases"];
  if (phases.size() < 2) return;
  Json& off = phases["reuse_off"];
  Json& on = phases["reuse_on"];
  Json& c = w["compare"];
  std::fprintf(out, "A/B                   %-22s %-22s %s\n", "reuse off", "reuse on", "on / off");
  auto row = [&](const char* label, const std::string& a, const std::string& b, const std::string& r) {
    std::fprintf(out, "  %-19s %-22s %-22s %s\n", label, a.c_str(), b.c_str(), r.c_str());
  };
  row("jobs/s", pfig(off["jobs_per_sec"]), pfig(on["jobs_per_sec"]), pfig(c["throughput_ratio"]));
  row("p95 job latency ms", pfig(off["latency_ms"]["total"]["p95"]), pfig(on["latency_ms"]["total"]["p95"]),
      pfig(c["p95_ratio"]));
  row("sshd CPU ms", perJob(off["server_cpu_ms"], off["server_cpu_ms_per_job"]),
      perJob(on["server_cpu_ms"], on["server_cpu_ms_per_job"]), pfig(c["server_cpu_ratio"]) + " per job");
  row("connections opened", perJob(off["connections_opened"], off["connections_per_job"]),
      perJob(on["connections_opened"], on["connections_per_job"]), pfig(c["connections_ratio"]) + " per job");
  row("done / failed", pfig(off["done"]) + " / " + pfig(off["failed"]), pfig(on["done"]) + " / " + pfig(on["failed"]), "");
}

// The workload's figures (the summary's "workload" object): nothing for a
// PTY run that measured no echo, so older runs print as they did.
void printWorkload(std::FILE* out, Json w) {
  if (!w.is_object()) return;
  std::string name = w.value("name", "pty");
  auto lat = [&](const char* label, Json h) {
    std::fprintf(out, "  %-8s n %-8s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms\n", label, fig(h["n"]).c_str(),
                 fig(h["p50_ms"]).c_str(), fig(h["p90_ms"]).c_str(), fig(h["p99_ms"]).c_str(),
                 h.contains("p999_ms") ? fig(h["p999_ms"]).c_str() : "-", fig(h["max_ms"]).c_str());
  };
  if (name == "pty") {
    if (!w.contains("echo") || w["echo"].is_null()) return;
    std::fprintf(out, "keystroke echo        ");
    Json& e = w["echo"];
    std::fprintf(out, "n %s, p50 %s ms, p90 %s ms, p99 %s ms, max %s ms\n", fig(e["n"]).c_str(),
                 fig(e["p50_ms"]).c_str(), fig(e["p90_ms"]).c_str(), fig(e["p99_ms"]).c_str(), fig(e["max_ms"]).c_str());
    return;
  }
  if (name == "churn") {
    std::fprintf(out, "\n== churn (target %s conn/s) ==\n",
                 w["target"].is_string() ? w["target"].get<std::string>().c_str() : "?");
    std::fprintf(out, "connections           %s attempted, %s succeeded, %s failed over %s s\n",
                 fig(w["attempted"]).c_str(), fig(w["succeeded"]).c_str(), fig(w["failed"]).c_str(),
                 fig(w["span_secs"]).c_str());
    std::fprintf(out, "achieved              %s conn/s; client CPU %s ms per connection; schedule behind at most %s ms\n",
                 fig(w["achieved_per_sec"]).c_str(), fig(w["cpu_ms_per_conn"]).c_str(), fig(w["max_behind_ms"]).c_str());
    std::fprintf(out, "phases (ms)\n");
    for (const auto& phase : report::phaseOrder(w["phases"])) lat(phase.c_str(), w["phases"][phase]);
    for (auto& [kind, f] : w["failures"].items()) {
      std::fprintf(out, "  failed %-16s %s  e.g. %s\n", kind.c_str(), fig(f["count"]).c_str(),
                   f.value("example", "").c_str());
    }
    if (w.contains("ramp")) {
      Json& r = w["ramp"];
      std::fprintf(out, "ramp                  step  target  achieved  failed  p99 total ms\n");
      for (auto& st : r["steps"]) {
        std::fprintf(out, "                      %4s  %6s  %8s  %6s  %s\n", fig(st["step"]).c_str(),
                     fig(st["target_per_sec"]).c_str(), fig(st["achieved_per_sec"]).c_str(), fig(st["failed"]).c_str(),
                     fig(st["p99_total_ms"]).c_str());
      }
      Json& bp = r["breaking_point"];
      if (bp.is_object()) {
        std::fprintf(out, "breaking point        step %s (target %s conn/s): %s\n", fig(bp["step"]).c_str(),
                     fig(bp["target_per_sec"]).c_str(), bp.value("reason", "").c_str());
      } else {
        std::fprintf(out, "breaking point        not reached\n");
      }
    }
    return;
  }
  if (name == "jobs") {
    printJobs(out, w);
    return;
  }
  if (name == "transfer") {
    std::fprintf(out, "\n== transfer ==\n");
    std::fprintf(out, "aggregate             %s MB/s (%s rounds, %s bytes over %s s)\n",
                 fig(w["aggregate_mb_per_sec"]).c_str(), fig(w["rounds"]).c_str(), fig(w["bytes"]).c_str(),
                 fig(w["span_secs"]).c_str());
    for (auto& [dir, d] : w["directions"].items()) {
      std::fprintf(out,
                   "  %-4s %s rounds, MB/s per round p50 %s (min %s, max %s), aggregate %s MB/s, client CPU %s s/GB, "
                   "window %s B, writes %s B\n",
                   dir.c_str(), fig(d["rounds"]).c_str(), fig(d["mb_per_sec_p50"]).c_str(),
                   fig(d["mb_per_sec_min"]).c_str(), fig(d["mb_per_sec_max"]).c_str(),
                   fig(d["aggregate_mb_per_sec"]).c_str(), fig(d["cpu_secs_per_gb"]).c_str(),
                   fig(d["window_bytes"]).c_str(), fig(d["write_bytes"]).c_str());
    }
    if (Json& p = w["per_session_mb_per_sec"]; p.is_object()) {
      std::fprintf(out, "per session           MB/s min %s, median %s, max %s (%s sessions)\n", fig(p["min"]).c_str(),
                   fig(p["median"]).c_str(), fig(p["max"]).c_str(), fig(p["sessions"]).c_str());
    }
    std::fprintf(out, "corrupt rounds        %s%s\n", fig(w["corrupt_rounds"]).c_str(),
                 w["first_corrupt"].is_object() ? ("  first: " + w["first_corrupt"].dump()).c_str() : "");
    std::fprintf(out, "stalls                %s (total %s ms, max %s ms); errors %s%s\n",
                 fig(w["stalls"]["count"]).c_str(), fig(w["stalls"]["total_ms"]).c_str(),
                 fig(w["stalls"]["max_ms"]).c_str(), fig(w["errors"]["count"]).c_str(),
                 w["errors"]["first"].is_string() ? ("  first: " + w["errors"]["first"].get<std::string>()).c_str() : "");
  }
}

// Fault windows (issue 16), one row each, the first CONSOLE_FAULT_ROWS;
// nothing for a run without faults.
constexpr size_t CONSOLE_FAULT_ROWS = 20;

void printFaults(std::FILE* out, const Json& faults, const Json& ignored) {
  if (!faults.is_array() || faults.empty()) return;
  std::fprintf(out, "\n== fault windows ==\n");
  std::fprintf(out, "%-28s %-26s %8s %8s %-19s %9s %s\n", "fault", "window", "affected", "noticed",
               "notice p50 / max", "recovered", "recover p50 / max");
  size_t shown = 0;
  for (const auto& w : faults) {
    if (shown++ == CONSOLE_FAULT_ROWS) break;
    report::FaultRow r = report::faultRow(w);
    std::fprintf(out, "%-28s %-26s %8s %8s %-19s %9s %s\n", r.fault.c_str(), r.window.c_str(), r.affected.c_str(),
                 r.noticed.c_str(), r.notice.c_str(), r.recovered.c_str(), r.recover.c_str());
  }
  uint64_t more = (faults.size() > CONSOLE_FAULT_ROWS ? faults.size() - CONSOLE_FAULT_ROWS : 0) +
                  (ignored.is_number_unsigned() ? ignored.get<uint64_t>() : 0);
  if (more > 0) std::fprintf(out, "(%llu more windows: sshsoak report LOG, or the summary's faults)\n",
                             static_cast<unsigned long long>(more));
}

}  // namespace

// By value: the non-const operator[] reads a missing field as null.
void printSummary(std::FILE* out, Json s, const std::string& logPath) {
  auto val = [](const Json& v) { return v.is_null() ? std::string("n/a") : v.dump(); };
  std::fprintf(out, "\n== sshsoak summary ==\n");
  std::fprintf(out, "sessions              %s (%s up at end, %s in manual reconnect)\n", val(s["sessions"]).c_str(),
               val(s["sessions_up_at_end"]).c_str(), val(s["sessions_manual"]).c_str());
  std::fprintf(out, "duration              %s s\n", val(s["duration_secs"]).c_str());
  std::fprintf(out, "abnormal ends         %s\n", val(s["abnormal_ends"]).c_str());
  std::fprintf(out, "reconnects            %s of %s interrupts (rate %s %%, p50 %s ms, p95 %s ms)\n",
               val(s["reconnects"]).c_str(), val(s["interrupts"]).c_str(),
               val(s["global_reconnect_rate_pct"]).c_str(), val(s["global_reconnect_p50_ms"]).c_str(),
               val(s["global_reconnect_p95_ms"]).c_str());
  // Issue 15: said when it happened; a summary of a clean run stays as it was.
  auto positive = [](const Json& v) { return v.is_number() && v.get<int64_t>() > 0; };
  if (positive(s["agents_unresponsive"]) || positive(s["agent_protocol_errors"])) {
    std::fprintf(out, "agents killed         %s unresponsive (agent_unresponsive), %s for a protocol error\n",
                 val(s["agents_unresponsive"]).c_str(), val(s["agent_protocol_errors"]).c_str());
  }
  if (positive(s["pty_floods"])) {
    std::fprintf(out, "PTY floods            %s (warning: a remote printed far more than the workload; see pty_flood)\n",
                 val(s["pty_floods"]).c_str());
  }
  printWorkload(out, s["workload"]);
  printFaults(out, s["faults"], s["faults_ignored"]);
  if (std::string pacer = report::pacerText(s["pacer"]); !pacer.empty()) {
    std::fprintf(out, "reconnect pacing      %s\n", pacer.c_str());
  }
  for (const auto& p : s["per_session"]) {
    if (!p["abnormal_end"].is_null()) {
      std::fprintf(out, "  session %02d %s: %s\n", p["session_id"].get<int>(), p["host"].get<std::string>().c_str(),
                   p["abnormal_end"].get<std::string>().c_str());
    }
  }
  if (const auto& r = s["resources"]; r.contains("total")) {
    auto kbMb = [&](const Json& v) { return v.is_null() ? std::string("n/a") : std::to_string(v.get<uint64_t>() / 1024); };
    std::fprintf(out,
                 "harness resources     CPU mean %s %% (%s %% after warm-up), peak %s %%; peak RSS %s MB, "
                 "peak PSS %s MB; fds %s -> %s\n",
                 val(r["total"]["cpu_mean_pct"]).c_str(), val(r["total"]["cpu_mean_after_warmup_pct"]).c_str(),
                 val(r["total"]["cpu_peak_pct"]).c_str(), kbMb(r["total"]["rss_peak_kb"]).c_str(),
                 kbMb(r["total"]["pss_peak_kb"]).c_str(), val(r["total"]["fds_after_warmup"]).c_str(),
                 val(r["total"]["fds_end"]).c_str());
  }
  if (s.contains("verdict")) {
    std::fprintf(out, "\n== verdict ==\n");
    auto num = [](const Json& v) { return v.is_null() ? std::string("n/a") : figureText(v.get<double>()); };
    std::fprintf(out, "%-20s %12s  %-22s %-6s %s\n", "criterion", "measured", "threshold", "result", "how measured");
    for (const auto& c : s["verdict"]) {
      std::string unit = c["unit"].get<std::string>();
      std::string shortUnit = unit.substr(0, unit.find(' '));
      std::string measured = num(c["measured"]) + (c["measured"].is_null() || unit.empty() ? "" : " " + shortUnit);
      std::string threshold =
          c["comparison"].get<std::string>() + " " + num(c["threshold"]) + (unit.empty() ? "" : " " + unit);
      std::fprintf(out, "%-20s %12s  %-22s %-6s %s\n", c["criterion"].get<std::string>().c_str(), measured.c_str(),
                   threshold.c_str(), c["result"].get<std::string>().c_str(), c["note"].get<std::string>().c_str());
    }
  }
  std::fprintf(out, "\nresult                %s\n", s["success"].get<bool>() ? "PASS" : "FAIL");
  std::fprintf(out, "event log             %s (%s lines)\n", logPath.c_str(), val(s["events_logged"]).c_str());
  std::fflush(out);
}

}  // namespace sshsoak
