#include "supervisor/analysis/console.h"

#include "supervisor/analysis/stats.h"

namespace sshsoak {

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
