#include "supervisor/analysis/report.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <ctime>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <unistd.h>

#include "shared/clock.h"
#include "supervisor/exit_codes.h"
#include "supervisor/analysis/ci_results.h"
#include "supervisor/analysis/hlog.h"
#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/merge.h"
#include "supervisor/analysis/run_model.h"
#include "supervisor/analysis/stats.h"

namespace sshsoak::report {

namespace {

std::string secs(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(ms) / 1000.0);
  return buf;
}

// The interrupt type, from what the log says was done or seen.
std::string interruptType(const RunModel::Interruptions& in) {
  std::vector<std::string> kinds;
  if (in.injectedDrops > 0) {
    kinds.push_back("Injected drop x" + std::to_string(in.injectedBatches) + " (" + std::to_string(in.injectedDrops) +
                    " session drops)");
  }
  if (in.faultCommands > 0) kinds.push_back("Fault command x" + std::to_string(in.faultCommands));
  static const std::map<std::string, std::string> names = {{"silence", "Network drop"},
                                                            {"eof", "Server closed / sshd restart"},
                                                            {"reset", "Connection reset"},
                                                            {"socket_error", "Socket error"},
                                                            {"protocol", "Protocol error"}};
  for (const auto& [cause, n] : in.causes) {
    if (cause == "injected") continue;  // said above
    auto it = names.find(cause);
    kinds.push_back((it != names.end() ? it->second : cause) + " (" + std::to_string(n) + ")");
  }
  std::string text;
  for (size_t i = 0; i < kinds.size(); ++i) text += (i ? "; " : "") + kinds[i];
  return text.empty() ? "None" : text;
}

}  // namespace

std::string formatDuration(double s) {
  long total = std::lround(s);
  long h = total / 3600, m = (total % 3600) / 60, sec = total % 60;
  char buf[48];
  if (h > 0) std::snprintf(buf, sizeof buf, "%ldh%02ldm", h, m);
  else if (m > 0 && sec == 0) std::snprintf(buf, sizeof buf, "%ldm", m);
  else if (m > 0) std::snprintf(buf, sizeof buf, "%ldm%02lds", m, sec);
  else std::snprintf(buf, sizeof buf, "%lds", sec);
  return buf;
}

namespace {

// Lines to runs, one line at a time. Lines carrying a run_id go to that
// run, so that runs appended to one file at once (--append) stay apart
// however their lines interleave; lines without one (older logs) go to the
// run the line before went to, with the order rule: a run ends at its summary or at the next run_started. A
// log_continued line (a rotated log's next part) continues the run it
// belongs to, or starts one whose beginning is missing.
class RunSplitter {
 public:
  explicit RunSplitter(std::string source) : source_(std::move(source)) {}

  void onLine(const Json& line) {
    std::string event = textField(line, "event");
    std::string id = textField(line, "run_id");
    if (event == "log_continued" && id.empty() && field(line, "run_started").is_object()) {
      id = textField(field(line, "run_started"), "run_id");
    }
    // A line without run_id (older logs wrote it on run_started only) goes
    // to the run it follows.
    if (id.empty() && current_ == nullptr) current_ = &unnamed_;
    if (id.empty() && event == "run_started" && current_->acc != nullptr && current_->acc->lineCount() > 0) {
      current_ = &unnamed_;
    }
    Open& open = id.empty() ? *current_ : byId_[id];
    current_ = &open;
    if (event == "log_continued") {
      if (open.acc != nullptr && !open.complete) return;
      start(open);
      open.acc->setStartMissing();
      if (field(line, "run_started").is_object()) open.acc->onLine(field(line, "run_started"));
      if (open.acc->runId().empty()) open.acc->setRunId(id);
      return;
    }
    if (open.acc == nullptr || open.complete || (event == "run_started" && open.acc->lineCount() > 0)) start(open);
    open.acc->onLine(line);
    // A run whose run_started is not here (lines of another run appended to
    // a shard's log) is still named by its lines' run_id.
    if (!id.empty() && open.acc->runId().empty()) open.acc->setRunId(id);
    if (event == "summary") open.complete = true;
  }

  std::vector<Run> finish() {
    std::vector<Run> runs;
    for (size_t i = 0; i < accs_.size(); ++i) {
      if (accs_[i]->runId().empty()) {
        accs_[i]->setRunId(std::filesystem::path(source_).stem().string() +
                           (accs_.size() > 1 ? "#" + std::to_string(i + 1) : ""));
      }
      runs.push_back(runOf(source_, accs_[i]));
    }
    return runs;
  }

 private:
  struct Open {
    RunAccumulator* acc = nullptr;
    bool complete = false;
  };
  void start(Open& open) {
    accs_.push_back(std::make_shared<RunAccumulator>());
    open.acc = accs_.back().get();
    open.complete = false;
  }
  std::string source_;
  std::vector<std::shared_ptr<RunAccumulator>> accs_;  // in order of first line
  Open unnamed_;                                       // a run whose lines carry no run_id
  Open* current_ = nullptr;                            // the run the last line went to
  std::map<std::string, Open> byId_;                   // a run's id to its run being read
};

// "01:02:03" of an ISO timestamp.
std::string clockOf(const std::string& ts) { return ts.size() >= 19 ? ts.substr(11, 8) : ts; }

}  // namespace

std::vector<Run> splitRuns(const std::string& source, const std::vector<Json>& lines) {
  RunSplitter splitter(source);
  for (const auto& l : lines) splitter.onLine(l);
  return splitter.finish();
}

Run runOf(const std::string& source, std::shared_ptr<const RunAccumulator> acc) {
  Run run;
  run.source = source;
  run.runId = acc->runId();
  run.complete = acc->model().summaryLine().has_value();
  run.acc = std::move(acc);
  derive(run);
  return run;
}

std::vector<std::string> rotatedSet(const std::string& path) {
  std::vector<std::string> parts;
  std::error_code ec;
  for (int n = 1; n < 10000; ++n) {
    std::string part = path + "." + std::to_string(n);
    if (!std::filesystem::exists(part, ec)) break;
    parts.push_back(part);
  }
  std::reverse(parts.begin(), parts.end());
  parts.push_back(path);
  return parts;
}

bool writeFileAtomically(const std::string& path, const std::string& text, std::string* error) {
  std::filesystem::path target(path);
  std::string tmp = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
  auto failed = [&](const char* what) {
    if (error != nullptr) *error = path + ": cannot " + what + " " + tmp + ": " + std::strerror(errno);
    return false;
  };
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return failed("create");
  bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  int saved = errno;
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    saved = errno;
  }
  if (!ok) {
    std::remove(tmp.c_str());
    errno = saved;
    return failed("write");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    saved = errno;
    std::remove(tmp.c_str());
    errno = saved;
    return failed("rename");
  }
  return true;
}

void derive(Run& run) {
  const RunModel& model = run.acc->model();
  run.sessions = model.sessionsInRun();
  run.topology = model.topology();
  run.interruptType = interruptType(model.interruptions());
  run.interrupts = model.interrupts();
  run.recovered = model.reconnects();
  run.reconnectMs = model.reconnectMs();
  run.durationSecs = model.spanSecs();
  run.workload = model.workload().json();
  // Windows still open are closed where the live summary closed them: at
  // the summary line's time, or the last line's for a run without one.
  int64_t endNs = run.acc->lastNs();
  if (model.summaryLine()) {
    if (int64_t at = parseIsoTimestamp(textField(*model.summaryLine(), "ts")); at != 0) endNs = at;
  }
  run.faults = model.faultsJson(endNs);
  run.faultsIgnored = model.faults().ignored();
  run.pacer = model.pacer().json();
  const Json* summary = model.summaryLine() ? &*model.summaryLine() : nullptr;
  std::vector<std::string> notes;
  if (run.acc->startMissing()) notes.push_back("the run's start is missing (its first log part was rotated away)");
  // A killed run: its last checkpoint holds the summary's fields so far.
  const auto& checkpoint = run.acc->lastCheckpoint();
  if (summary == nullptr && checkpoint) {
    summary = &*checkpoint;
    if (auto n = countField(*checkpoint, "checkpoint", UINT32_MAX)) run.checkpoint = static_cast<uint32_t>(*n);
    notes.push_back("incomplete: figures from checkpoint " + (run.checkpoint ? std::to_string(*run.checkpoint) : "?") +
                    " at " + clockOf(textField(*checkpoint, "ts")) + " (run killed?)");
  }
  if (summary != nullptr) {
    const Json& s = *summary;
    if (field(s, "duration_secs").is_number()) run.durationSecs = field(s, "duration_secs").get<double>();
    if (auto n = countField(s, "abnormal_ends", UINT32_MAX)) run.abnormalEnds = static_cast<uint32_t>(*n);
    if (s.contains("resources") && field(s, "resources").is_object()) {
      const Json& total = field(field(s, "resources"), "total");
      if (total.is_object()) {
        // The figure the verdict judges: the steady state after warm-up.
        if (field(total, "cpu_mean_after_warmup_pct").is_number()) {
          run.cpuMeanPct = field(total, "cpu_mean_after_warmup_pct").get<double>();
        } else if (field(total, "cpu_mean_pct").is_number()) {
          run.cpuMeanPct = field(total, "cpu_mean_pct").get<double>();
        }
        if (field(total, "pss_peak_kb").is_number()) run.memPeakMb = field(total, "pss_peak_kb").get<double>() / 1024.0;
      }
    }
    if (s.contains("verdict")) {
      run.verdict = field(s, "verdict");
      for (const auto& c : run.verdict) {
        if (c.value("result", "") == "fail") notes.push_back(c.value("criterion", "?") + " failed");
      }
    } else if (run.abnormalEnds && *run.abnormalEnds > 0) {
      notes.push_back("abnormal_ends failed");
    }
  } else if (model.abortedDetail()) {
    notes.push_back("did not start: " + *model.abortedDetail());
  } else {
    notes.push_back("incomplete: no summary (run killed?)");
  }
  for (size_t i = 0; i < notes.size(); ++i) run.notes += (i ? "; " : "") + notes[i];
}

// No line sshsoak writes comes near it (a 1,000-session summary is under
// 1 MB); a longer one is damage, named and skipped.
constexpr size_t MAX_LINE_BYTES = 16u << 20;
// A repeating fault makes a window a minute for hours: the table shows the
// first ones, the summary and the HTML all that were kept.
constexpr size_t MARKDOWN_FAULT_ROWS = 50;

Input read(const std::vector<std::string>& paths) {
  Input input;
  for (const auto& path : paths) {
    RunSplitter splitter(path);
    size_t events = 0;
    bool opened = false;
    for (const auto& part : rotatedSet(path)) {
      std::ifstream in(part);
      if (!in) {
        if (part == path) input.errors.push_back(ReadError{part, errno}.text());
        continue;
      }
      opened = true;
      std::string text;
      size_t lineNo = 0;
      while (std::getline(in, text)) {
        ++lineNo;
        if (text.empty()) continue;
        std::string where = part + " line " + std::to_string(lineNo);
        if (text.size() > MAX_LINE_BYTES) {
          input.warnings.push_back(where + ": " + std::to_string(text.size()) + " bytes, longer than any line sshsoak " +
                                   "writes; skipped");
          continue;
        }
        Json j = Json::parse(text, nullptr, false);
        if (j.is_discarded()) {
          // A run killed mid-write leaves a cut line; a later run appended to
          // the same file follows it (sshsoak starts it on a line of its own).
          input.warnings.push_back(where + ": not a complete event (a run killed mid-write?); skipped");
          continue;
        }
        if (auto problem = lineProblem(j)) {
          input.warnings.push_back(where + ": " + *problem + "; skipped");
          continue;
        }
        try {
          splitter.onLine(j);
        } catch (const Json::exception& e) {
          // A field of a type the reader did not expect (lineProblem checks
          // the ones it knows): the line is named and left out.
          input.warnings.push_back(where + ": a field of an unexpected type (" + e.what() + "); skipped");
          continue;
        }
        ++events;
      }
    }
    if (!opened) continue;
    if (events == 0) {
      input.warnings.push_back(path + ": no events");
      continue;
    }
    auto runs = splitter.finish();
    input.runs.insert(input.runs.end(), runs.begin(), runs.end());
  }
  return input;
}

std::string markdown(const Input& input) {
  std::string out;
  out += "| Run ID | Topology (A/B) | Sessions | Duration | Interrupt Type | Reconnect Success (x/y) | "
         "Reconnect Time p50/p95 (s) | Abnormal Ends | CPU | Mem | Notes |\n";
  out += "|---|---|---:|---|---|---|---|---:|---|---|---|\n";
  auto row = [&](const std::string& id, const std::string& topo, uint32_t sessions, double dur,
                 const std::string& interrupts, uint32_t ok, uint32_t total, std::vector<int64_t> ms,
                 const std::string& abnormal, const std::string& cpu, const std::string& mem, const std::string& notes) {
    auto p50 = percentile(ms, 0.50), p95 = percentile(ms, 0.95);
    std::string times = p50 ? secs(*p50) + " / " + secs(*p95) : "n/a";
    std::string success = total == 0 ? "n/a (0/0)" : std::to_string(ok) + "/" + std::to_string(total);
    out += "| " + id + " | " + topo + " | " + std::to_string(sessions) + " | " + formatDuration(dur) + " | " +
           interrupts + " | " + success + " | " + times + " | " + abnormal + " | " + cpu + " | " + mem + " | " +
           notes + " |\n";
  };
  uint32_t sessions = 0, ok = 0, total = 0, abnormal = 0, failedRuns = 0;
  double dur = 0, cpuMax = -1, memMax = -1;
  std::vector<int64_t> all;
  std::set<std::string> topos;
  for (const auto& r : input.runs) {
    row(r.runId, r.topology, r.sessions, r.durationSecs, r.interruptType, r.recovered, r.interrupts, r.reconnectMs,
        r.abnormalEnds ? std::to_string(*r.abnormalEnds) : "?", r.cpuMeanPct ? figureText(*r.cpuMeanPct) + " %" : "n/a",
        r.memPeakMb ? figureText(*r.memPeakMb) + " MB PSS" : "n/a", r.notes.empty() ? "all criteria passed" : r.notes);
    sessions += r.sessions;
    ok += r.recovered;
    total += r.interrupts;
    abnormal += r.abnormalEnds.value_or(0);
    dur += r.durationSecs;
    if (!r.notes.empty()) ++failedRuns;
    if (r.cpuMeanPct) cpuMax = std::max(cpuMax, *r.cpuMeanPct);
    if (r.memPeakMb) memMax = std::max(memMax, *r.memPeakMb);
    all.insert(all.end(), r.reconnectMs.begin(), r.reconnectMs.end());
    topos.insert(r.topology);
  }
  if (input.runs.size() > 1) {
    std::string topo;
    for (const auto& t : topos) topo += (topo.empty() ? "" : ",") + t;
    row("**all " + std::to_string(input.runs.size()) + " runs**", topo, sessions, dur, "", ok, total, all,
        std::to_string(abnormal), cpuMax >= 0 ? "max " + figureText(cpuMax) + " %" : "n/a",
        memMax >= 0 ? "max " + figureText(memMax) + " MB PSS" : "n/a",
        std::to_string(failedRuns) + " of " + std::to_string(input.runs.size()) + " runs with failed criteria or incomplete");
  }
  for (const auto& r : input.runs) {
    out += workloadMarkdown(r.runId, r.workload);
    out += faultsMarkdown(r.runId, r.faults, r.faultsIgnored, MARKDOWN_FAULT_ROWS);
    if (std::string pacer = pacerText(r.pacer); !pacer.empty()) out += "\n**Reconnect pacing " + r.runId + "**: " + pacer + "\n";
    out += "\n**Verdict " + r.runId + "**";
    if (!r.verdict.is_array()) {
      out += ": no verdict in this log" + std::string(r.complete ? "" : " (incomplete run)") + "\n";
      continue;
    }
    out += "\n\n| criterion | measured | threshold | result |\n|---|---:|---|---|\n";
    for (const auto& c : r.verdict) {
      std::string measured = field(c, "measured").is_number() ? figureText(field(c, "measured").get<double>()) : "n/a";
      std::string unit = c.value("unit", "");
      out += "| " + c.value("criterion", "?") + " | " + measured + (unit.empty() || measured == "n/a" ? "" : " " + unit) +
             " | " + c.value("comparison", "") + " " + (field(c, "threshold").is_number() ? figureText(field(c, "threshold").get<double>()) : "?") +
             (unit.empty() ? "" : " " + unit) + " | " + c.value("result", "?") + " |\n";
    }
  }
  return out;
}

namespace {

std::string msText(const Json& v) {
  if (!v.is_number()) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", v.get<double>() / 1000.0);
  return buf;
}

std::string secsText(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", s);
  return buf;
}

std::string countText(const Json& v) { return v.is_number() ? figureText(v.get<double>()) : "?"; }

}  // namespace

FaultRow faultRow(const Json& w) {
  FaultRow r;
  r.fault = textField(w, "spec");
  if (r.fault.empty()) r.fault = textField(w, "kind");
  if (auto occurrence = countField(w, "occurrence"); occurrence && *occurrence > 1) {
    r.fault += " #" + std::to_string(*occurrence);
  }
  double start = field(w, "start_secs").is_number() ? field(w, "start_secs").get<double>() : 0;
  double length = field(w, "duration_ms").is_number() ? field(w, "duration_ms").get<double>() / 1000.0 : 0;
  bool open = field(w, "open_at_end").is_boolean() && field(w, "open_at_end").get<bool>();
  r.window = secsText(start) + "-" + secsText(start + length) + " s" + (open ? " (open at end)" : "");
  r.affected = countText(field(w, "sessions_affected"));
  r.noticed = countText(field(w, "noticed"));
  const Json& notice = field(w, "notice_ms");
  const Json& recover = field(w, "recover_ms");
  r.notice = field(notice, "p50").is_number() ? msText(field(notice, "p50")) + " / " + msText(field(notice, "max")) : "-";
  r.recovered = countText(field(w, "recovered")) + "/" + r.noticed;
  r.recover = field(recover, "p50").is_number() ? msText(field(recover, "p50")) + " / " + msText(field(recover, "max")) : "-";
  return r;
}

std::string faultsMarkdown(const std::string& runId, const Json& faults, uint64_t ignored, size_t maxRows) {
  if (!faults.is_array() || faults.empty()) return "";
  std::string out = "\n**Fault windows " + runId +
                    "**\n\n| fault | window | affected | noticed | time to notice p50 / max | recovered | "
                    "time to recover p50 / max |\n|---|---|---:|---:|---|---:|---|\n";
  size_t shown = 0;
  for (const auto& w : faults) {
    if (shown++ == maxRows) break;
    FaultRow r = faultRow(w);
    out += "| `" + r.fault + "` | " + r.window + " | " + r.affected + " | " + r.noticed + " | " + r.notice + " | " +
           r.recovered + " | " + r.recover + " |\n";
  }
  uint64_t more = (faults.size() > maxRows ? faults.size() - maxRows : 0) + ignored;
  if (more > 0) out += "\n" + std::to_string(more) + " more fault windows (the summary's `faults` lists the first " +
                       std::to_string(FaultModel::MAX_WINDOWS) + ")\n";
  return out;
}

std::string pacerText(const Json& p) {
  if (!p.is_object()) return "";
  std::string mode = textField(p, "mode");
  uint64_t decreases = countField(p, "decreases").value_or(0), increases = countField(p, "increases").value_or(0);
  if (mode != "adaptive" && decreases + increases == 0) return "";
  auto rate = [&](const char* k) { return field(p, k).is_number() ? preciseText(field(p, k).get<double>()) : "n/a"; };
  std::string out = mode + ": rate " + rate("initial_rate") + "/s at start, " + rate("final_rate") + "/s at end (min " +
                    rate("min_rate") + ", max " + rate("max_rate") + "); " + std::to_string(increases) + " increases, " +
                    std::to_string(decreases) + " decreases";
  const Json& reasons = field(p, "decrease_reasons");
  if (reasons.is_object() && !reasons.empty()) {
    std::string list;
    for (const auto& [reason, n] : reasons.items()) {
      list += (list.empty() ? "" : ", ") + reason + " x" + (n.is_number() ? n.dump() : "?");
    }
    out += " (" + list + ")";
  }
  return out;
}

std::vector<std::string> phaseOrder(const Json& phases) {
  std::vector<std::string> order;
  if (!phases.is_object()) return order;
  for (const char* p : CHURN_PHASES) {
    if (phases.contains(p)) order.emplace_back(p);
  }
  for (const auto& [name, h] : phases.items()) {
    if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
  }
  return order;
}

std::string workloadMarkdown(const std::string& runId, const Json& workload) {
  Json w = workload;  // operator[] reads a missing field as null
  if (!w.is_object()) return "";
  auto fig = [](const Json& v) { return v.is_number() ? figureText(v.get<double>()) : std::string("n/a"); };
  std::string name = w.value("name", "pty");
  std::string out;
  auto latencyTable = [&](std::vector<std::pair<std::string, Json>> rows) {
    out += "\n| latency (ms) | n | p50 | p90 | p99 | p99.9 | max |\n|---|---:|---:|---:|---:|---:|---:|\n";
    for (auto& [label, h] : rows) {
      out += "| " + label + " | " + fig(h["n"]) + " | " + fig(h["p50_ms"]) + " | " + fig(h["p90_ms"]) + " | " +
             fig(h["p99_ms"]) + " | " + fig(h["p999_ms"]) + " | " + fig(h["max_ms"]) + " |\n";
    }
  };
  if (name == "pty") {
    if (w["echo"].is_null()) return "";
    out += "\n**Keystroke echo " + runId + "**\n";
    latencyTable({{"echo", w["echo"]}});
    return out;
  }
  if (name == "churn") {
    out += "\n**Churn " + runId + "** (target " + (w["target"].is_string() ? w["target"].get<std::string>() : "?") +
           " conn/s)\n\n| attempted | succeeded | failed | achieved conn/s | client CPU ms/conn | max behind ms |\n"
           "|---:|---:|---:|---:|---:|---:|\n| " +
           fig(w["attempted"]) + " | " + fig(w["succeeded"]) + " | " + fig(w["failed"]) + " | " +
           fig(w["achieved_per_sec"]) + " | " + fig(w["cpu_ms_per_conn"]) + " | " + fig(w["max_behind_ms"]) + " |\n";
    std::vector<std::pair<std::string, Json>> rows;
    for (const auto& phase : phaseOrder(w["phases"])) rows.emplace_back(phase, w["phases"][phase]);
    if (!rows.empty()) latencyTable(rows);
    if (!w["failures"].empty()) {
      out += "\n| failure | count | first example |\n|---|---:|---|\n";
      for (auto& [kind, f] : w["failures"].items()) {
        out += "| " + kind + " | " + fig(f["count"]) + " | " + f.value("example", "") + " |\n";
      }
    }
    if (w.contains("ramp")) {
      Json& r = w["ramp"];
      out += "\n| ramp step | target conn/s | achieved conn/s | failed | p99 total ms |\n|---:|---:|---:|---:|---:|\n";
      for (auto& st : r["steps"]) {
        out += "| " + fig(st["step"]) + " | " + fig(st["target_per_sec"]) + " | " + fig(st["achieved_per_sec"]) + " | " +
               fig(st["failed"]) + " | " + fig(st["p99_total_ms"]) + " |\n";
      }
      Json& bp = r["breaking_point"];
      out += "\nBreaking point: " +
             (bp.is_object() ? "step " + fig(bp["step"]) + " (target " + fig(bp["target_per_sec"]) +
                                   " conn/s): " + bp.value("reason", "")
                             : std::string("not reached")) +
             "\n";
    }
    return out;
  }
  if (name == "jobs") {
    auto pfig = [](const Json& v) { return v.is_number() ? preciseText(v.get<double>()) : std::string("n/a"); };
    out += "\n**Jobs " + runId + "** (reuse " + (w["reuse"].is_string() ? w["reuse"].get<std::string>() : "?") + ", " +
           pfig(w["workers"]) + (w["workers"] == 1 ? " worker" : " workers") + ")\n\n| submitted | done | failed | aborted | cancelled | not started | lost | "
           "retried | shed | rejected | jobs/s |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| " +
           pfig(w["submitted"]) + " | " + pfig(w["done"]) + " | " + pfig(w["failed"]) + " | " + pfig(w["aborted"]) + " | " +
           pfig(w["cancelled"]) + " | " + pfig(w["not_started"]) + " | " + pfig(w["lost"]) + " | " + pfig(w["retried"]) +
           " | " + pfig(w["shed"]) + " | " + pfig(w["rejected"]) + " | " + pfig(w["jobs_per_sec"]) + " |\n";
    if (w["incomplete"].is_string()) out += "\nIncomplete: " + w["incomplete"].get<std::string>() + "\n";
    out += "\n| job latency (ms) | n | p50 | p95 | p99 | max |\n|---|---:|---:|---:|---:|---:|\n";
    for (const char* lat : JOB_LATENCIES) {
      Json& h = w["latency_ms"][lat];
      out += std::string("| ") + lat + " | " + pfig(h["n"]) + " | " + pfig(h["p50"]) + " | " + pfig(h["p95"]) + " | " +
             pfig(h["p99"]) + " | " + pfig(h["max"]) + " |\n";
    }
    out += "\n| reuse rate | connections opened | per hour per worker | setup saved ms | idle closes | lru closes | "
           "dead replaced | dropped closes | tainted closes |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| " +
           pfig(w["reuse_rate"]) + " | " + pfig(w["connections_opened"]) + " | " +
           pfig(w["connections_per_hour_per_worker"]) + " | " + pfig(w["setup_saved_ms"]) + " | " + pfig(w["idle_closes"]) +
           " | " + pfig(w["lru_closes"]) + " | " + pfig(w["dead_replaced"]) + " | " + pfig(w["dropped_closes"]) + " | " +
           pfig(w["tainted_closes"]) + " |\n";
    if (w["setup_saved_method"].is_string()) out += "\nSetup saved: " + w["setup_saved_method"].get<std::string>() + "\n";
    if (!w["failures"].empty()) {
      out += "\n| job failure | count | first example |\n|---|---:|---|\n";
      for (auto& [kind, f] : w["failures"].items()) {
        out += "| " + kind + " | " + pfig(f["count"]) + " | " + f.value("example", "") + " |\n";
      }
    }
    Json& phases = w["phases"];
    if (phases.size() >= 2) {
      Json& off = phases["reuse_off"];
      Json& on = phases["reuse_on"];
      Json& c = w["compare"];
      auto perJob = [&](Json& total, Json& per) { return pfig(total) + (per.is_number() ? " (" + pfig(per) + "/job)" : ""); };
      out += "\n| --compare-reuse | reuse off | reuse on | on / off |\n|---|---:|---:|---:|\n";
      out += "| jobs/s | " + pfig(off["jobs_per_sec"]) + " | " + pfig(on["jobs_per_sec"]) + " | " +
             pfig(c["throughput_ratio"]) + " |\n";
      out += "| p95 job latency ms | " + pfig(off["latency_ms"]["total"]["p95"]) + " | " +
             pfig(on["latency_ms"]["total"]["p95"]) + " | " + pfig(c["p95_ratio"]) + " |\n";
      out += "| sshd CPU ms | " + perJob(off["server_cpu_ms"], off["server_cpu_ms_per_job"]) + " | " +
             perJob(on["server_cpu_ms"], on["server_cpu_ms_per_job"]) + " | " + pfig(c["server_cpu_ratio"]) + " per job |\n";
      out += "| connections opened | " + perJob(off["connections_opened"], off["connections_per_job"]) + " | " +
             perJob(on["connections_opened"], on["connections_per_job"]) + " | " + pfig(c["connections_ratio"]) +
             " per job |\n";
      out += "| done / failed | " + pfig(off["done"]) + " / " + pfig(off["failed"]) + " | " + pfig(on["done"]) + " / " +
             pfig(on["failed"]) + " | |\n";
    }
    return out;
  }
  if (name == "transfer") {
    out += "\n**Transfer " + runId + "**: aggregate " + fig(w["aggregate_mb_per_sec"]) + " MB/s, " + fig(w["rounds"]) +
           " rounds, " + fig(w["corrupt_rounds"]) + " corrupt, " + fig(w["stalls"]["count"]) + " stalls (max " +
           fig(w["stalls"]["max_ms"]) + " ms), " + fig(w["errors"]["count"]) + " errors\n";
    out += "\n| direction | rounds | MB/s per round p50 (min-max) | aggregate MB/s | client CPU s/GB | window | write |\n"
           "|---|---:|---|---:|---:|---:|---:|\n";
    for (auto& [dir, d] : w["directions"].items()) {
      out += "| " + dir + " | " + fig(d["rounds"]) + " | " + fig(d["mb_per_sec_p50"]) + " (" + fig(d["mb_per_sec_min"]) +
             "-" + fig(d["mb_per_sec_max"]) + ") | " + fig(d["aggregate_mb_per_sec"]) + " | " + fig(d["cpu_secs_per_gb"]) +
             " | " + fig(d["window_bytes"]) + " B | " + fig(d["write_bytes"]) + " B |\n";
    }
    if (Json& p = w["per_session_mb_per_sec"]; p.is_object()) {
      out += "\nPer session MB/s: min " + fig(p["min"]) + ", median " + fig(p["median"]) + ", max " + fig(p["max"]) + " (" +
             fig(p["sessions"]) + " sessions)\n";
    }
    if (w["first_corrupt"].is_object()) out += "\nFirst corrupt round: `" + w["first_corrupt"].dump() + "`\n";
    if (w["errors"]["first"].is_string()) out += "\nFirst error: " + w["errors"]["first"].get<std::string>() + "\n";
  }
  return out;
}

namespace {

// `report --merge`: the shards of one run as one (merge.h). Exit codes as a
// single run's: 0 every shard complete and every criterion passed, 1 a
// criterion failed or a shard is missing, running or failed, 3 unreadable
// input or an output that cannot be written.
int mergeMain(const std::vector<std::string>& given, const std::string& html, const std::string& hlogPath,
              const std::string& junit, const std::string& summaryJson) {
  auto paths = merge::expandPaths(given);
  if (!paths) {
    std::fprintf(stderr, "sshsoak report --merge: %s\n", paths.error().c_str());
    return exit_code::BAD_INPUT;
  }
  Input input = read(*paths);
  for (const auto& w : input.warnings) std::fprintf(stderr, "sshsoak report: warning: %s\n", w.c_str());
  for (const auto& e : input.errors) std::fprintf(stderr, "sshsoak report: %s\n", e.c_str());
  if (input.runs.empty()) {
    std::fprintf(stderr, "sshsoak report --merge: no runs found in %zu file(s)\n", paths->size());
    return exit_code::BAD_INPUT;
  }
  auto merged = merge::merge(input);
  if (!merged) {
    std::fprintf(stderr, "sshsoak report --merge: %s\n", merged.error().c_str());
    return exit_code::BAD_INPUT;
  }
  for (const auto& w : merged->warnings) std::fprintf(stderr, "sshsoak report --merge: %s\n", w.c_str());
  for (const auto& row : merged->shards) {
    if (row.state != "complete") {
      std::fprintf(stderr, "sshsoak report --merge: shard %u/%u %s: %s\n", row.index, merged->shardCount,
                   row.state.c_str(), row.why.c_str());
    }
  }
  std::string table, page;
  try {
    table = merge::markdown(*merged);
    if (!html.empty()) page = merge::html(*merged);
  } catch (const Json::exception& e) {
    std::fprintf(stderr, "sshsoak report: a value in the log cannot be shown (%s); check the lines named above\n",
                 e.what());
    return exit_code::BAD_INPUT;
  }
  std::printf("%s", table.c_str());
  std::string error;
  if (!html.empty()) {
    if (!writeFileAtomically(html, page, &error)) {
      std::fprintf(stderr, "sshsoak report: --html %s (name a writable file)\n", error.c_str());
      return exit_code::BAD_INPUT;
    }
    std::fprintf(stderr, "sshsoak report: wrote %s\n", html.c_str());
  }
  if (!hlogPath.empty()) {
    int64_t firstNs = 0;
    double span = 0;
    for (const auto& r : merged->runs) {
      if (r.acc->firstNs() && (firstNs == 0 || *r.acc->firstNs() < firstNs)) firstNs = *r.acc->firstNs();
      span = std::max(span, r.acc->spanSecs());
    }
    std::string text = hlog::render(merged->histograms, static_cast<double>(firstNs) / 1e9, span,
                                    "sshsoak report --merge " + merged->runId + ": " + std::to_string(merged->shardCount) +
                                        " shards");
    if (!writeFileAtomically(hlogPath, text, &error)) {
      std::fprintf(stderr, "sshsoak report: --hlog %s (name a writable file)\n", error.c_str());
      return exit_code::BAD_INPUT;
    }
    std::fprintf(stderr, "sshsoak report: wrote %s\n", hlogPath.c_str());
  }
  int code = merge::passed(*merged) ? exit_code::PASSED : exit_code::CRITERIA_FAILED;
  // The merged run for CI: its summary, a shard's settings, the merge's code.
  if (!junit.empty() || !summaryJson.empty()) {
    Json settings;
    for (const auto& r : merged->runs) {
      if (r.acc->runStarted()) {
        settings = *r.acc->runStarted();
        break;
      }
    }
    ci::RunResult result{.runId = merged->runId, .source = "merge of " + std::to_string(paths->size()) + " logs",
                         .summary = merged->summary, .settings = settings, .exitCode = code};
    for (auto e : {ci::writeJunit(junit, {result}), ci::writeSummaryJson(summaryJson, result)}) {
      if (!e) continue;
      std::fprintf(stderr, "sshsoak report: %s\n", e->c_str());
      return exit_code::BAD_INPUT;
    }
    if (!junit.empty()) std::fprintf(stderr, "sshsoak report: wrote %s\n", junit.c_str());
    if (!summaryJson.empty()) std::fprintf(stderr, "sshsoak report: wrote %s\n", summaryJson.c_str());
  }
  if (!input.errors.empty()) return exit_code::BAD_INPUT;
  return code;
}

}  // namespace

int main(int argc, const char* const* argv) {
  CLI::App app{"sshsoak report: the result table of one or more runs, as Markdown, from their JSONL logs",
               "sshsoak report"};
  std::vector<std::string> paths;
  std::string html;
  app.add_option("logs", paths, "JSONL logs written by sshsoak")->required();
  app.add_option("--html", html, "Also write a self-contained HTML report (timelines, resources, reconnect times)");
  // Issue 17: the verdict for CI and scripts (ci_results.h).
  std::string junit, summaryJson;
  app.add_option("--junit", junit, "Also write the verdict as JUnit XML: one testsuite per run, one testcase per "
                                   "criterion");
  app.add_option("--summary-json", summaryJson, "Also write the run's summary, verdict and exit code as one JSON "
                                                "document (one run: name its log)");
  // Issue 17: shards merged into one run; the histograms as an .hlog.
  bool mergeShards = false;
  std::string hlogPath;
  app.add_flag("--merge", mergeShards,
               "The logs (or the *.jsonl of one directory) are the shards of one run (--shard I/N): one global "
               "summary, table, verdict and exit code, with a row per shard");
  app.add_option("--hlog", hlogPath, "Also write the latency histograms as an HdrHistogram interval log (.hlog)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "sshsoak report: %s\nRun 'sshsoak report --help'.\n", e.what());
    return exit_code::USAGE;
  }
  if (mergeShards) return mergeMain(paths, html, hlogPath, junit, summaryJson);
  Input input = read(paths);
  for (const auto& w : input.warnings) std::fprintf(stderr, "sshsoak report: warning: %s\n", w.c_str());
  for (const auto& e : input.errors) std::fprintf(stderr, "sshsoak report: %s\n", e.c_str());
  if (input.runs.empty()) {
    std::fprintf(stderr, "sshsoak report: no runs found in %zu file(s)\n", paths.size());
    return exit_code::BAD_INPUT;
  }
  std::string table, page;
  try {
    table = markdown(input);
    if (!html.empty()) page = renderHtml(input.runs);
  } catch (const Json::exception& e) {
    // Every line was checked on reading (lineProblem); a value that still
    // does not fit is the log's, not a bug to exit 70 on.
    std::fprintf(stderr, "sshsoak report: a value in the log cannot be shown (%s); check the lines named above\n",
                 e.what());
    return exit_code::BAD_INPUT;
  }
  if (!summaryJson.empty() && input.runs.size() > 1) {
    std::string ids;
    for (const auto& r : input.runs) ids += (ids.empty() ? "" : ", ") + r.runId;
    std::fprintf(stderr, "sshsoak report: --summary-json takes one run; the logs hold %zu (%s): name the log of one "
                 "run (or merge a sharded run's logs with --merge)\n", input.runs.size(), ids.c_str());
    return exit_code::USAGE;
  }
  std::printf("%s", table.c_str());
  if (!junit.empty() || !summaryJson.empty()) {
    std::vector<ci::RunResult> results;
    for (const auto& r : input.runs) results.push_back(ci::resultOf(r));
    bool failed = false;
    for (auto error : {ci::writeJunit(junit, results), ci::writeSummaryJson(summaryJson, results.front())}) {
      if (!error) continue;
      failed = true;
      std::fprintf(stderr, "sshsoak report: %s\n", error->c_str());
    }
    if (failed) return exit_code::BAD_INPUT;
    if (!junit.empty()) std::fprintf(stderr, "sshsoak report: wrote %s\n", junit.c_str());
    if (!summaryJson.empty()) std::fprintf(stderr, "sshsoak report: wrote %s\n", summaryJson.c_str());
  }
  if (!html.empty()) {
    std::string error;
    if (!writeFileAtomically(html, page, &error)) {
      std::fprintf(stderr, "sshsoak report: --html %s (name a writable file)\n", error.c_str());
      return exit_code::BAD_INPUT;
    }
    std::fprintf(stderr, "sshsoak report: wrote %s\n", html.c_str());
  }
  if (!hlogPath.empty()) {
    // One run: its histograms by name; several: each tag prefixed by its run.
    std::map<std::string, hdr::Histogram> all;
    for (const auto& r : input.runs) {
      for (auto& [name, h] : r.acc->model().histograms()) {
        all.emplace(input.runs.size() == 1 ? name : r.runId + ":" + name, h);
      }
    }
    const auto& first = *input.runs.front().acc;
    std::string error;
    std::string text = hlog::render(all, first.firstNs() ? static_cast<double>(*first.firstNs()) / 1e9 : 0,
                                    first.spanSecs(), "sshsoak report " + input.runs.front().runId);
    if (!writeFileAtomically(hlogPath, text, &error)) {
      std::fprintf(stderr, "sshsoak report: --hlog %s (name a writable file)\n", error.c_str());
      return exit_code::BAD_INPUT;
    }
    std::fprintf(stderr, "sshsoak report: wrote %s\n", hlogPath.c_str());
  }
  return input.errors.empty() ? 0 : exit_code::BAD_INPUT;
}

}  // namespace sshsoak::report
