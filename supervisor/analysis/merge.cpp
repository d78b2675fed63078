#include "supervisor/analysis/merge.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/stats.h"
#include "supervisor/analysis/verdict.h"
#include "supervisor/analysis/workload_model.h"

namespace sshsoak::merge {

namespace {

// The summary's counts that add up over shards (run_model.cpp writes them).
constexpr const char* SUMMED[] = {
    "sessions",          "abnormal_ends",         "sessions_up_at_end",  "sessions_manual",
    "interrupts",        "reconnects",            "agent_crashes",       "agent_restarts",
    "agents_unresponsive", "agent_protocol_errors", "pty_floods",        "sessions_gave_up",
    "reconnect_attempts", "sessions_auth_failed", "sessions_opened",     "events_logged"};

// Criteria the merge computes from the merged figures; every other one is a
// property of each shard's machine (memory, CPU, leaks, sampling) and is
// the worst shard's.
const std::set<std::string>& mergedCriteria() {
  static const std::set<std::string> names = {"abnormal_ends",   "reconnect_rate_pct", "reconnect_p95_ms",
                                              "conn_rate_per_sec", "conn_failures",    "connect_p99_ms",
                                              "job_p95_ms"};
  return names;
}

uint64_t countOf(const Json& j, const char* key) { return countField(j, key).value_or(0); }

Json orNull(std::optional<int64_t> v) { return v ? Json(*v) : Json(nullptr); }
Json orNull(std::optional<double> v) { return v ? Json(*v) : Json(nullptr); }

bool verdictFailed(const Json& verdict) {
  if (!verdict.is_array()) return false;
  return std::any_of(verdict.begin(), verdict.end(),
                     [](const Json& c) { return c.is_object() && c.value("result", "") == "fail"; });
}

// fail > pass > n/a: the row that judges the shards' worst.
int severity(const Json& row) {
  std::string r = row.value("result", "");
  return r == "fail" ? 2 : r == "pass" ? 1 : 0;
}

// Of two rows with the same result, the one measured nearer its limit's
// wrong side (the larger for <, <=; the smaller for >=).
bool fartherFrom(const Json& row, const Json& than) {
  const Json& a = field(row, "measured");
  const Json& b = field(than, "measured");
  if (!a.is_number()) return false;
  if (!b.is_number()) return true;
  return row.value("comparison", "") == ">=" ? a.get<double>() < b.get<double>() : a.get<double>() > b.get<double>();
}

cli::WorkloadKind kindOf(const std::string& name) {
  if (name == "churn") return cli::WorkloadKind::CHURN;
  if (name == "transfer") return cli::WorkloadKind::TRANSFER;
  if (name == "jobs") return cli::WorkloadKind::JOBS;
  return cli::WorkloadKind::PTY;
}

std::optional<LatencyHistogram> latencyOf(const std::map<std::string, hdr::Histogram>& hs, const std::string& name) {
  auto it = hs.find(name);
  if (it == hs.end()) return std::nullopt;
  return hdr::toLatency(it->second);
}

double numberIn(const Json& j, const char* key) { return field(j, key).is_number() ? field(j, key).get<double>() : 0.0; }

// The workload object over all shards: counts summed, latency figures from
// the merged histograms. Churn ramps and transfer figures are per shard
// (kept in the shards list) and said so.
Json mergedWorkload(const std::vector<const Json*>& summaries, const std::map<std::string, hdr::Histogram>& hs) {
  if (summaries.empty()) return nullptr;
  Json first = field(*summaries.front(), "workload");
  std::string name = first.is_object() ? first.value("name", "pty") : "pty";
  Json w = Json::object();
  w["name"] = name;
  if (name == "pty") {
    auto echo = latencyOf(hs, "echo_us");
    w["echo"] = echo && !echo->empty() ? figuresJson(*echo) : Json(nullptr);
    return w;
  }
  if (name == "churn") {
    w = first;
    uint64_t attempted = 0, succeeded = 0, failed = 0, maxBehind = 0;
    double perSec = 0, cpuMs = 0;
    Json failures = Json::object();
    for (const Json* s : summaries) {
      const Json& sw = field(*s, "workload");
      attempted += countOf(sw, "attempted");
      succeeded += countOf(sw, "succeeded");
      failed += countOf(sw, "failed");
      maxBehind = std::max(maxBehind, countOf(sw, "max_behind_ms"));
      perSec += numberIn(sw, "achieved_per_sec");
      cpuMs += numberIn(sw, "cpu_ms_per_conn") * static_cast<double>(countOf(sw, "attempted"));
      if (field(sw, "failures").is_object()) {
        for (const auto& [kind, f] : field(sw, "failures").items()) {
          if (!failures.contains(kind)) failures[kind] = Json{{"count", 0}, {"example", f.value("example", "")}};
          failures[kind]["count"] = failures[kind]["count"].get<uint64_t>() + countOf(f, "count");
        }
      }
    }
    w["attempted"] = attempted;
    w["succeeded"] = succeeded;
    w["failed"] = failed;
    w["max_behind_ms"] = maxBehind;
    w["achieved_per_sec"] = std::round(perSec * 10.0) / 10.0;
    w["cpu_ms_per_conn"] = attempted == 0 ? Json(nullptr) : Json(std::round(cpuMs / static_cast<double>(attempted) * 100.0) / 100.0);
    Json phases = Json::object();
    for (const char* p : CHURN_PHASES) {
      if (auto h = latencyOf(hs, std::string("churn_") + p + "_us")) phases[p] = figuresJson(*h);
    }
    w["phases"] = std::move(phases);
    w["failures"] = std::move(failures);
    if (w.contains("ramp")) {
      w.erase("ramp");
      w["ramp_note"] = "a ramp's steps are per shard (each shard's summary has its own)";
    }
    return w;
  }
  if (name == "jobs") {
    w = first;
    for (const char* key : {"submitted", "done", "failed", "aborted", "cancelled", "not_started", "lost", "retried",
                            "shed", "rejected", "connections_opened", "idle_closes", "lru_closes", "dead_replaced",
                            "dropped_closes", "tainted_closes", "workers"}) {
      if (!first.contains(key)) continue;
      uint64_t sum = 0;
      for (const Json* s : summaries) sum += countOf(field(*s, "workload"), key);
      w[key] = sum;
    }
    double perSec = 0;
    for (const Json* s : summaries) perSec += numberIn(field(*s, "workload"), "jobs_per_sec");
    w["jobs_per_sec"] = perSec;
    Json lat = Json::object();
    for (const char* l : JOB_LATENCIES) {
      auto h = latencyOf(hs, std::string("job_") + l + "_us");
      lat[l] = jobLatencyFiguresJson(h ? *h : LatencyHistogram());
    }
    w["latency_ms"] = std::move(lat);
    w["merge_note"] = "counts summed and latencies merged over shards; ratios and phases are per shard";
    return w;
  }
  w = first;
  w["merge_note"] = "the transfer figures are per shard (each shard's summary has its own)";
  return w;
}

// The row of one criterion for the merged verdict.
Json criterionJson(const Criterion& c) { return verdictJson({c})[0]; }

}  // namespace

Result<std::vector<std::string>, std::string> expandPaths(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (paths.size() == 1 && fs::is_directory(paths[0], ec)) {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(paths[0], ec)) {
      if (e.is_regular_file(ec) && e.path().extension() == ".jsonl") files.push_back(e.path().string());
    }
    if (ec) return fail(paths[0] + ": cannot list: " + ec.message());
    std::sort(files.begin(), files.end());
    if (files.empty()) return fail(paths[0] + ": no *.jsonl files in it (name the shard logs, or their directory)");
    return files;
  }
  return paths;
}

void addHistograms(const Json& histograms, std::map<std::string, hdr::Histogram>& into, const std::string& where,
                   std::vector<std::string>* warnings) {
  if (!histograms.is_object()) return;
  for (const auto& [name, text] : histograms.items()) {
    auto h = text.is_string() ? hdr::fromBase64(text.get<std::string>())
                              : Result<hdr::Histogram, std::string>(fail(std::string("not a string")));
    bool merged = false;
    if (h) {
      auto [it, added] = into.try_emplace(name, *h);
      merged = added || it->second.merge(*h);
      if (!merged && warnings != nullptr) {
        warnings->push_back(where + ": histogram " + name + " has another layout than the other shards'; left out");
      }
    } else if (warnings != nullptr) {
      warnings->push_back(where + ": histogram " + name + ": " + h.error() + "; left out");
    }
  }
}

Result<Merged, std::string> merge(const report::Input& input) {
  Merged m;
  // The run: the run_id most shards name.
  std::map<std::string, size_t> byId;
  for (const auto& r : input.runs) {
    if (r.acc->shard()) ++byId[r.runId];
  }
  if (byId.empty()) {
    return fail(std::string("no shard in these logs: their lines carry no `shard` field (runs made with --shard I/N "
                            "or --shard-count N write it)"));
  }
  m.runId = std::max_element(byId.begin(), byId.end(), [](const auto& a, const auto& b) { return a.second < b.second; })
                ->first;
  std::map<uint32_t, size_t> byCount;
  for (const auto& r : input.runs) {
    if (r.acc->shard() && r.runId == m.runId) ++byCount[r.acc->shard()->count];
  }
  m.shardCount = std::max_element(byCount.begin(), byCount.end(),
                                  [](const auto& a, const auto& b) { return a.second < b.second; })
                     ->first;

  std::map<uint32_t, const report::Run*> byIndex;
  for (const auto& r : input.runs) {
    const auto& shard = r.acc->shard();
    if (!shard) {
      m.warnings.push_back(r.source + ": run " + r.runId + " is not a shard (no `shard` field); left out");
      continue;
    }
    if (r.runId != m.runId) {
      m.warnings.push_back(r.source + ": " + std::to_string(r.acc->lineCount()) + " lines of another run (run_id " +
                           r.runId + ", not " + m.runId + "); left out");
      continue;
    }
    if (shard->count != m.shardCount) {
      m.warnings.push_back(r.source + ": shard " + std::to_string(shard->index) + "/" + std::to_string(shard->count) +
                           " does not agree with the other shards' count " + std::to_string(m.shardCount) +
                           "; left out");
      continue;
    }
    auto [it, added] = byIndex.try_emplace(shard->index, &r);
    if (!added) {
      // Two logs of one index (a retried pod): the one with a summary counts.
      const report::Run* keep = it->second;
      const report::Run* drop = &r;
      if (!keep->complete && r.complete) std::swap(keep, drop);
      it->second = keep;
      m.warnings.push_back(drop->source + ": shard " + std::to_string(shard->index) + " again (also in " +
                           keep->source + "); left out");
    }
  }

  std::vector<const Json*> summaries;
  for (uint32_t i = 0; i < m.shardCount; ++i) {
    ShardRow row;
    row.index = i;
    row.runId = m.runId;
    auto it = byIndex.find(i);
    if (it == byIndex.end()) {
      row.state = "missing";
      row.why = "no log of shard " + std::to_string(i) + " among the files given";
      m.shards.push_back(std::move(row));
      continue;
    }
    const report::Run& r = *it->second;
    m.runs.push_back(r);
    row.source = r.source;
    const RunModel& model = r.acc->model();
    if (model.summaryLine()) {
      row.summary = *model.summaryLine();
      bool failedVerdict = verdictFailed(field(row.summary, "verdict"));
      row.state = failedVerdict ? "failed" : "complete";
      if (failedVerdict) row.why = r.notes;
    } else {
      // Its figures so far, from its own lines (the same model a finished run's summary comes from).
      row.summary = model.summary(r.acc->lastNs(), r.acc->spanSecs(), r.acc->lineCount());
      if (model.abortedDetail()) {
        row.state = "failed";
        row.why = "run_aborted: " + *model.abortedDetail();
      } else {
        row.state = "running";
        row.why = "no summary: still running, or killed (figures so far from its " + std::to_string(r.acc->lineCount()) +
                  " lines)";
      }
    }
    addHistograms(field(row.summary, "histograms"), m.histograms, r.source, &m.warnings);
    m.shards.push_back(std::move(row));
  }
  for (const auto& row : m.shards) {
    if (!row.summary.is_null()) summaries.push_back(&row.summary);
  }

  // The global summary: one run's shape.
  int64_t lastNs = 0;
  for (const auto& r : m.runs) lastNs = std::max(lastNs, r.acc->lastNs());
  Json s = lineHead(lastNs, std::nullopt, "", "summary");
  s["run_id"] = m.runId;
  std::map<std::string, uint64_t> sums;
  double duration = 0;
  Json perSession = Json::array();
  for (const Json* sj : summaries) {
    for (const char* key : SUMMED) sums[key] += countOf(*sj, key);
    duration = std::max(duration, numberIn(*sj, "duration_secs"));
    if (field(*sj, "per_session").is_array()) {
      for (const auto& p : field(*sj, "per_session")) perSession.push_back(p);
    }
  }
  std::sort(perSession.begin(), perSession.end(),
            [](const Json& a, const Json& b) { return countOf(a, "session_id") < countOf(b, "session_id"); });
  const hdr::Histogram* reconnect = m.histograms.count("reconnect_ms") ? &m.histograms.at("reconnect_ms") : nullptr;
  auto reconnectAt = [&](double q) { return reconnect ? reconnect->nearestRank(q) : std::nullopt; };
  size_t states[4] = {0, 0, 0, 0};
  for (const auto& row : m.shards) {
    states[row.state == "complete" ? 0 : row.state == "failed" ? 1 : row.state == "running" ? 2 : 3]++;
  }
  char detail[320];
  std::snprintf(detail, sizeof detail,
                "%u shards (%zu complete, %zu failed, %zu running, %zu missing): %llu sessions, %llu abnormal ends, "
                "%llu/%llu reconnected",
                m.shardCount, states[0], states[1], states[2], states[3],
                static_cast<unsigned long long>(sums["sessions"]), static_cast<unsigned long long>(sums["abnormal_ends"]),
                static_cast<unsigned long long>(sums["reconnects"]), static_cast<unsigned long long>(sums["interrupts"]));
  s["detail"] = detail;
  s["success"] = sums["abnormal_ends"] == 0;
  s["sessions"] = sums["sessions"];
  s["duration_secs"] = std::round(duration * 10.0) / 10.0;
  for (const char* key : SUMMED) {
    if (std::string(key) != "sessions") s[key] = sums[key];
  }
  s["global_reconnect_rate_pct"] = orNull(ratePct(sums["reconnects"], sums["interrupts"]));
  s["global_reconnect_p50_ms"] = orNull(reconnectAt(0.50));
  s["global_reconnect_p95_ms"] = orNull(reconnectAt(0.95));
  s["global_reconnect_max_ms"] = orNull(reconnectAt(1.0));
  s["reconnect_attempt_success_pct"] = orNull(ratePct(sums["reconnects"], sums["reconnect_attempts"]));
  double hours = duration / 3600.0;
  s["sessions_opened_per_slot_per_hour"] =
      perSession.empty() || hours <= 0
          ? Json(nullptr)
          : Json(std::round(100.0 * static_cast<double>(sums["sessions_opened"]) / static_cast<double>(perSession.size()) /
                            hours) /
                 100.0);
  s["per_session"] = std::move(perSession);
  s["workload"] = mergedWorkload(summaries, m.histograms);
  s["histograms"] = RunModel::histogramsJson(m.histograms);

  // Resources are each machine's: the largest shard's.
  Json total = Json::object();
  for (const Json* sj : summaries) {
    const Json& t = field(field(*sj, "resources"), "total");
    for (const char* key : {"pss_peak_kb", "rss_peak_kb", "cpu_mean_after_warmup_pct", "cpu_mean_pct", "cpu_peak_pct"}) {
      if (field(t, key).is_number() && (!total.contains(key) || total[key].get<double>() < field(t, key).get<double>())) {
        total[key] = field(t, key);
      }
    }
  }
  s["resources"] = Json{{"total", total}, {"note", "per machine: each figure is the largest shard's"}};

  // The verdict: evaluate() on the merged figures, judged by the shards'
  // thresholds; the per-machine criteria are the worst shard's rows.
  const Json* withVerdict = nullptr;
  for (const Json* sj : summaries) {
    if (field(*sj, "verdict").is_array()) {
      withVerdict = sj;
      break;
    }
  }
  Thresholds t = thresholdsOfVerdict(withVerdict ? field(*withVerdict, "verdict") : Json(nullptr));
  VerdictInputs in;
  in.abnormalEnds = static_cast<uint32_t>(sums["abnormal_ends"]);
  in.interrupts = static_cast<uint32_t>(sums["interrupts"]);
  in.reconnects = static_cast<uint32_t>(sums["reconnects"]);
  in.reconnectP95Ms = reconnectAt(0.95);
  const Json& w = s["workload"];
  in.workload = kindOf(w.is_object() ? w.value("name", "pty") : "pty");
  if (in.workload == cli::WorkloadKind::CHURN) {
    in.connAttempted = countOf(w, "attempted");
    in.connFailures = countOf(w, "failed");
    in.connRatePerSec = numberIn(w, "achieved_per_sec");
    if (auto h = latencyOf(m.histograms, "churn_total_us"); h && !h->empty()) in.connectP99Ms = figuresOf(*h).p99Ms;
  }
  if (in.workload == cli::WorkloadKind::JOBS) {
    if (auto h = latencyOf(m.histograms, "job_total_us")) in.jobP95Ms = latencyPercentileMs(*h, 95);
  }
  Json verdict = Json::array();
  for (const Criterion& c : evaluate(in, t)) {
    if (mergedCriteria().count(c.name) > 0) {
      verdict.push_back(criterionJson(c));
      continue;
    }
    // The worst shard's row for this criterion.
    std::optional<Json> worst;
    uint32_t worstShard = 0;
    for (const auto& row : m.shards) {
      const Json& v = field(row.summary, "verdict");
      if (!v.is_array()) continue;
      for (const auto& r : v) {
        if (!r.is_object() || r.value("criterion", "") != c.name) continue;
        if (!worst || severity(r) > severity(*worst) || (severity(r) == severity(*worst) && fartherFrom(r, *worst))) {
          worst = r;
          worstShard = row.index;
        }
      }
    }
    if (!worst) {
      verdict.push_back(criterionJson(c));
      continue;
    }
    std::string note = (*worst).value("note", "");
    (*worst)["note"] = "worst shard: " + std::to_string(worstShard) + (note.empty() ? "" : "; " + note);
    verdict.push_back(*worst);
  }
  // Every shard must have finished with its summary.
  std::string notDone;
  uint32_t finished = 0;
  for (const auto& row : m.shards) {
    if (row.state == "complete" || row.state == "failed") ++finished;
    if (row.state == "running" || row.state == "missing" || (row.state == "failed" && row.summary.is_object() &&
                                                              !field(row.summary, "verdict").is_array())) {
      notDone += (notDone.empty() ? "" : "; ") + std::string("shard ") + std::to_string(row.index) + " " + row.state;
    }
  }
  Criterion shardsDone{"shards_finished", "shards finished with a summary", static_cast<double>(finished),
                       static_cast<double>(m.shardCount), "==", "", notDone.empty() ? Verdict::PASS : Verdict::FAIL,
                       notDone.empty() ? "" : notDone};
  verdict.push_back(criterionJson(shardsDone));
  s["verdict"] = std::move(verdict);

  s["shard_count"] = m.shardCount;
  Json shards = Json::array();
  for (const auto& row : m.shards) {
    Json j;
    j["shard"] = row.index;
    j["run_id"] = row.runId;
    j["state"] = row.state;
    j["source"] = row.source.empty() ? Json(nullptr) : Json(row.source);
    j["why"] = row.why.empty() ? Json(nullptr) : Json(row.why);
    for (const char* key : {"sessions", "abnormal_ends", "interrupts", "reconnects", "agent_crashes", "events_logged"}) {
      j[key] = row.summary.is_null() ? Json(nullptr) : Json(countOf(row.summary, key));
    }
    j["duration_secs"] = row.summary.is_null() ? Json(nullptr) : field(row.summary, "duration_secs");
    j["global_reconnect_p95_ms"] = row.summary.is_null() ? Json(nullptr) : field(row.summary, "global_reconnect_p95_ms");
    j["verdict_failed"] = Json::array();
    if (row.summary.is_object() && field(row.summary, "verdict").is_array()) {
      for (const auto& c : field(row.summary, "verdict")) {
        if (c.value("result", "") == "fail") j["verdict_failed"].push_back(c.value("criterion", "?"));
      }
    }
    shards.push_back(std::move(j));
  }
  s["shards"] = std::move(shards);
  m.summary = std::move(s);
  // As a single run's: success is the verdict's (and every shard ended),
  // so --summary-json and --junit agree with the exit code.
  m.summary["success"] = passed(m);
  return m;
}

bool passed(const Merged& m) {
  return !verdictFailed(field(m.summary, "verdict")) &&
         std::all_of(m.shards.begin(), m.shards.end(), [](const ShardRow& r) { return r.state == "complete"; });
}

std::string markdown(const Merged& m) {
  const Json& s = m.summary;
  auto fig = [](const Json& v) { return v.is_number() ? figureText(v.get<double>()) : std::string("n/a"); };
  auto secs = [](const Json& v) {
    if (!v.is_number()) return std::string("n/a");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v.get<double>() / 1000.0);
    return std::string(buf);
  };
  std::string out = "**Merged run " + m.runId + "**: " + textField(s, "detail") + "\n\n";
  out += "| Shard | State | Sessions | Duration | Reconnect Success (x/y) | Reconnect Time p50/p95 (s) | Abnormal Ends | "
         "CPU | Mem | Notes |\n|---|---|---:|---|---|---|---:|---|---|---|\n";
  auto row = [&](const std::string& name, const std::string& state, const Json& j, const std::string& notes) {
    if (j.is_null()) {
      out += "| " + name + " | " + state + " | | | | | | | | " + notes + " |\n";
      return;
    }
    uint64_t ok = countOf(j, "reconnects"), total = countOf(j, "interrupts");
    std::string success = total == 0 ? "n/a (0/0)" : std::to_string(ok) + "/" + std::to_string(total);
    std::string times = field(j, "global_reconnect_p50_ms").is_number()
                            ? secs(field(j, "global_reconnect_p50_ms")) + " / " + secs(field(j, "global_reconnect_p95_ms"))
                            : "n/a";
    const Json& t = field(field(j, "resources"), "total");
    std::string cpu = field(t, "cpu_mean_after_warmup_pct").is_number() ? fig(field(t, "cpu_mean_after_warmup_pct")) + " %"
                      : field(t, "cpu_mean_pct").is_number()            ? fig(field(t, "cpu_mean_pct")) + " %"
                                                                        : "n/a";
    std::string mem = field(t, "pss_peak_kb").is_number()
                          ? figureText(std::round(field(t, "pss_peak_kb").get<double>() / 1024.0 * 10) / 10) + " MB PSS"
                          : "n/a";
    out += "| " + name + " | " + state + " | " + fig(field(j, "sessions")) + " | " +
           report::formatDuration(numberIn(j, "duration_secs")) + " | " + success + " | " + times + " | " +
           fig(field(j, "abnormal_ends")) + " | " + cpu + " | " + mem + " | " + notes + " |\n";
  };
  for (const auto& r : m.shards) {
    row(std::to_string(r.index) + "/" + std::to_string(m.shardCount), r.state, r.summary,
        r.why + (r.source.empty() ? "" : (r.why.empty() ? "" : "; ") + r.source));
  }
  row("**total**", passed(m) ? "pass" : "FAIL", s, "CPU and Mem: the largest shard's");
  out += report::workloadMarkdown(m.runId, field(s, "workload"));
  out += "\n**Verdict " + m.runId + " (all shards)**\n\n| criterion | measured | threshold | result | note |\n|---|---:|---|---|---|\n";
  for (const auto& c : field(s, "verdict")) {
    std::string unit = c.value("unit", "");
    std::string measured = field(c, "measured").is_number() ? figureText(field(c, "measured").get<double>()) : "n/a";
    out += "| " + c.value("criterion", "?") + " | " + measured + (unit.empty() || measured == "n/a" ? "" : " " + unit) +
           " | " + c.value("comparison", "") + " " + fig(field(c, "threshold")) + (unit.empty() ? "" : " " + unit) +
           " | " + c.value("result", "?") + " | " + c.value("note", "") + " |\n";
  }
  return out;
}

namespace {
std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}
}  // namespace

std::string html(const Merged& m) {
  // The shards' own report (timelines, resources, verdicts), with the merged
  // table and verdict first: the run as one, then each of its parts.
  std::string page = report::renderHtml(m.runs);
  std::string merged = "<section id=\"merged\"><h2>Merged run " + escape(m.runId) + " (" +
                       std::to_string(m.shardCount) + " shards): " + (passed(m) ? "PASS" : "FAIL") +
                       "</h2><table><tr><th>shard</th><th>state</th><th>sessions</th><th>reconnects</th>"
                       "<th>reconnect p95 ms</th><th>abnormal ends</th><th>why</th></tr>";
  auto cell = [](const Json& v) { return v.is_number() ? figureText(v.get<double>()) : std::string(""); };
  for (const auto& sh : field(m.summary, "shards")) {
    merged += "<tr><td>" + cell(sh["shard"]) + "</td><td>" + escape(sh.value("state", "")) + "</td><td>" +
              cell(sh["sessions"]) + "</td><td>" + cell(sh["reconnects"]) + "/" + cell(sh["interrupts"]) + "</td><td>" +
              cell(sh["global_reconnect_p95_ms"]) + "</td><td>" + cell(sh["abnormal_ends"]) + "</td><td>" +
              escape(sh["why"].is_string() ? sh["why"].get<std::string>() : "") + "</td></tr>";
  }
  const Json& s = m.summary;
  merged += "<tr><th>total</th><th>" + std::string(passed(m) ? "pass" : "FAIL") + "</th><th>" + cell(s["sessions"]) +
            "</th><th>" + cell(s["reconnects"]) + "/" + cell(s["interrupts"]) + "</th><th>" +
            cell(s["global_reconnect_p95_ms"]) + "</th><th>" + cell(s["abnormal_ends"]) + "</th><th></th></tr></table>";
  merged += "<h3>Verdict (all shards)</h3><table><tr><th>criterion</th><th>measured</th><th>threshold</th><th>result</th>"
            "<th>note</th></tr>";
  for (const auto& c : field(s, "verdict")) {
    merged += "<tr><td>" + escape(c.value("criterion", "")) + "</td><td>" + cell(c["measured"]) + " " +
              escape(c.value("unit", "")) + "</td><td>" + escape(c.value("comparison", "")) + " " + cell(c["threshold"]) +
              "</td><td>" + escape(c.value("result", "")) + "</td><td>" + escape(c.value("note", "")) + "</td></tr>";
  }
  merged += "</table></section>";
  auto at = page.find("<h1>sshsoak report</h1>");
  if (at == std::string::npos) return merged + page;
  at += std::string("<h1>sshsoak report</h1>").size();
  return page.substr(0, at) + merged + page.substr(at);
}

}  // namespace sshsoak::merge
