#include "supervisor/analysis/ci_results.h"

#include <cstdio>

#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/report.h"
#include "supervisor/analysis/stats.h"
#include "supervisor/exit_codes.h"

namespace sshsoak::ci {

namespace {

// The --summary-json document's format name: a script checks it before it
// reads the rest; a change to the shape that breaks a reader changes it.
constexpr const char* SUMMARY_FORMAT = "sshsoak-summary/1";

// Length of the UTF-8 sequence starting at s[i] if it is valid (and not a
// character XML 1.0 excludes), else 0.
size_t validUtf8(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = b > 0xF4 ? 0 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC2 ? 2 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t cp = b & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  bool overlong = (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
  bool excluded = (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF || cp > 0x10FFFF;
  return overlong || excluded ? 0 : n;
}

std::string numberText(const Json& v) {
  return v.is_number() ? figureText(v.get<double>()) : std::string("n/a");
}

// "measured 3 sessions, threshold <= 0 sessions": what a CI page shows for a
// failed criterion, with the units the console's verdict table uses.
std::string criterionMessage(const Json& c) {
  std::string unit = textField(c, "unit");
  std::string shortUnit = unit.substr(0, unit.find(' '));
  const Json& measured = field(c, "measured");
  std::string text = textField(c, "criterion") + ": measured " + numberText(measured) +
                     (measured.is_number() && !shortUnit.empty() ? " " + shortUnit : "") + ", threshold " +
                     textField(c, "comparison") + " " + numberText(field(c, "threshold")) +
                     (unit.empty() ? "" : " " + unit);
  return text;
}

std::string settingText(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) out += (out.empty() ? "" : ", ") + settingText(e);
    return out;
  }
  return v.dump();
}

// The run's settings: run_started's fields, less the line's own (event, ts)
// and the common fields it leaves null or true (success).
Json settingsOf(const Json& runStarted) {
  Json out = Json::object();
  if (!runStarted.is_object()) return out;
  for (const auto& [key, value] : runStarted.items()) {
    if (key == "event" || key == "ts" || key == "success" || value.is_null()) continue;
    out[key] = value;
  }
  return out;
}

bool isCheckpoint(const Json& summary) { return textField(summary, "event") == "checkpoint"; }

// Why the run has no final verdict yet (or never will), or "" when it has one.
std::string incompleteReason(const RunResult& run) {
  if (!run.summary.is_object()) {
    return "no summary and no checkpoint in the log: the run was killed before its first checkpoint (or is "
           "still starting)";
  }
  if (isCheckpoint(run.summary)) {
    return "the run has not ended: figures from checkpoint " + numberText(field(run.summary, "checkpoint")) + " at " +
           textField(run.summary, "ts") + " (killed, or still running)";
  }
  return "";
}

struct Counts {
  int tests = 0, failures = 0, errors = 0, skipped = 0;
};

std::string attr(const char* name, const std::string& value) {
  return std::string(" ") + name + "=\"" + xmlEscape(value) + "\"";
}

std::string secsText(double secs) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", secs < 0 ? 0.0 : secs);
  return buf;
}

std::string testsuiteXml(const RunResult& run, Counts& counts, double& secs) {
  std::string cases;
  Counts c;
  std::string className = "sshsoak." + run.runId;
  const Json& verdict = field(run.summary, "verdict");
  for (const auto& criterion : verdict.is_array() ? verdict : Json::array()) {
    ++c.tests;
    std::string name = textField(criterion, "criterion");
    std::string note = textField(criterion, "note");
    std::string result = textField(criterion, "result");
    cases += "    <testcase" + attr("name", name) + attr("classname", className) + attr("time", "0");
    if (result == "fail") {
      ++c.failures;
      cases += ">\n      <failure" + attr("type", "criterion failed") + attr("message", criterionMessage(criterion)) +
               ">" + xmlEscape(criterionMessage(criterion) + (note.empty() ? "" : "\n" + note)) +
               "</failure>\n    </testcase>\n";
    } else if (result == "pass") {
      cases += ">\n      <system-out>" + xmlEscape(criterionMessage(criterion) + (note.empty() ? "" : "\n" + note)) +
               "</system-out>\n    </testcase>\n";
    } else {
      // n/a: nothing to measure (no interrupts, no samples); the run does
      // not fail on it, and CI shows it as skipped, not as passed.
      ++c.skipped;
      std::string why = note.empty() ? "nothing to measure" : note;
      cases += ">\n      <skipped" + attr("message", why.rfind("n/a", 0) == 0 ? why : "n/a: " + why) +
               "/>\n    </testcase>\n";
    }
  }
  // Outside the criteria: a run that has not ended, or a summary that failed
  // without a failed criterion (a merge that misses a shard says so in its
  // detail), is a failure CI must see; a finished run that passed adds nothing.
  std::string reason = incompleteReason(run);
  bool failedWithoutCriterion = reason.empty() && run.summary.is_object() &&
                                field(run.summary, "success").is_boolean() && !run.summary["success"].get<bool>() &&
                                c.failures == 0;
  // An exit code other than 0 or 1 (the log failed, the relay died, a
  // report file could not be written) fails the run whatever its criteria.
  bool failedOutsideVerdict = reason.empty() && run.exitCode && *run.exitCode != 0 && *run.exitCode != 1;
  if (!reason.empty() || failedWithoutCriterion || failedOutsideVerdict) {
    if (reason.empty() && failedWithoutCriterion) reason = "the run failed: " + textField(run.summary, "detail");
    if (reason.empty()) {
      reason = "the run ended with exit code " + std::to_string(*run.exitCode) + " (docs/reference.md, exit codes)";
    }
    ++c.tests;
    ++c.failures;
    cases += "    <testcase" + attr("name", "run_complete") + attr("classname", className) + attr("time", "0") +
             ">\n      <failure" + attr("type", "run incomplete") + attr("message", reason) + ">" + xmlEscape(reason) +
             "</failure>\n    </testcase>\n";
  }

  std::string props;
  auto prop = [&](const std::string& name, const std::string& value) {
    props += "      <property" + attr("name", name) + attr("value", value) + "/>\n";
  };
  if (!run.source.empty()) prop("log", run.source);
  if (run.exitCode) prop("exit_code", std::to_string(*run.exitCode));
  Json settings = settingsOf(run.settings);
  for (const auto& [key, value] : settings.items()) prop(key, settingText(value));

  secs = field(run.summary, "duration_secs").is_number() ? run.summary["duration_secs"].get<double>() : 0;
  std::string timestamp = textField(run.settings, "ts");
  if (timestamp.empty()) timestamp = textField(run.summary, "ts");
  std::string out = "  <testsuite" + attr("name", run.runId) + attr("tests", std::to_string(c.tests)) +
                    attr("failures", std::to_string(c.failures)) + attr("errors", std::to_string(c.errors)) +
                    attr("skipped", std::to_string(c.skipped)) + attr("time", secsText(secs)) +
                    (timestamp.empty() ? "" : attr("timestamp", timestamp)) + ">\n";
  if (!props.empty()) out += "    <properties>\n" + props + "    </properties>\n";
  out += cases;
  std::string detail = textField(run.summary, "detail");
  if (!detail.empty()) out += "    <system-out>" + xmlEscape(detail) + "</system-out>\n";
  out += "  </testsuite>\n";
  counts.tests += c.tests;
  counts.failures += c.failures;
  counts.errors += c.errors;
  counts.skipped += c.skipped;
  return out;
}

}  // namespace

std::string xmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    auto b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      switch (b) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&apos;"; break;
        case '\t': out += "&#9;"; break;
        case '\n': out += "&#10;"; break;
        case '\r': out += "&#13;"; break;
        default:
          // XML 1.0 cannot hold other control characters, not even escaped.
          if (b < 0x20 || b == 0x7F) out += "\xEF\xBF\xBD";
          else out += static_cast<char>(b);
      }
      ++i;
      continue;
    }
    size_t n = validUtf8(text, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::optional<int> exitCodeOf(const Json& summary) {
  if (!summary.is_object() || textField(summary, "event") == "checkpoint") return std::nullopt;
  if (textField(summary, "event") == "run_aborted" && field(summary, "exit_code").is_number_integer()) {
    return summary["exit_code"].get<int>();
  }
  const Json& success = field(summary, "success");
  if (!success.is_boolean()) return std::nullopt;
  return success.get<bool>() ? exit_code::PASSED : exit_code::CRITERIA_FAILED;
}

RunResult resultOf(const report::Run& run) {
  RunResult r;
  r.runId = run.runId;
  r.source = run.source;
  if (run.acc) {
    const auto& model = run.acc->model();
    if (model.summaryLine()) r.summary = *model.summaryLine();
    else if (run.acc->lastCheckpoint()) r.summary = *run.acc->lastCheckpoint();
    if (run.acc->runStarted()) r.settings = *run.acc->runStarted();
  }
  r.exitCode = exitCodeOf(r.summary);
  return r;
}

std::string junitXml(const std::vector<RunResult>& runs) {
  Counts counts;
  double secs = 0;
  std::string suites;
  for (const auto& run : runs) {
    double s = 0;
    suites += testsuiteXml(run, counts, s);
    secs += s;
  }
  // testsuites carries no skipped count: the schema CI servers check
  // (junit-10.xsd) has none there; each testsuite has its own.
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites" + attr("name", "sshsoak") +
         attr("tests", std::to_string(counts.tests)) + attr("failures", std::to_string(counts.failures)) +
         attr("errors", std::to_string(counts.errors)) + attr("time", secsText(secs)) + ">\n" + suites +
         "</testsuites>\n";
}

Json summaryDocument(const RunResult& run) {
  Json doc;
  doc["format"] = SUMMARY_FORMAT;
  doc["run_id"] = run.runId;
  doc["log"] = run.source;
  std::string reason = incompleteReason(run);
  doc["state"] = !run.summary.is_object()                           ? "no_summary"
                 : isCheckpoint(run.summary)                          ? "checkpoint"
                 : textField(run.summary, "event") == "run_aborted" ? "aborted"
                                                                      : "complete";
  doc["incomplete"] = reason.empty() ? Json(nullptr) : Json(reason);
  doc["success"] = reason.empty() && field(run.summary, "success").is_boolean() && run.summary["success"].get<bool>() &&
                   (!run.exitCode || *run.exitCode == 0 || *run.exitCode == 1);
  doc["exit_code"] = run.exitCode ? Json(*run.exitCode) : Json(nullptr);
  doc["started_ts"] = textField(run.settings, "ts").empty() ? Json(nullptr) : Json(textField(run.settings, "ts"));
  doc["settings"] = settingsOf(run.settings);
  const Json& verdict = field(run.summary, "verdict");
  doc["verdict"] = verdict.is_array() ? verdict : Json::array();
  // k6's shape for scripts that already read k6: each threshold by its
  // expression, ok true / false (null: n/a, nothing to measure).
  Json thresholds = Json::object();
  Json failed = Json::array();
  for (const auto& c : doc["verdict"]) {
    std::string name = textField(c, "criterion");
    std::string expr = name + " " + textField(c, "comparison") + " " + numberText(field(c, "threshold"));
    std::string result = textField(c, "result");
    thresholds[expr] = {{"ok", result == "pass" ? Json(true) : result == "fail" ? Json(false) : Json(nullptr)},
                        {"measured", field(c, "measured")}};
    if (result == "fail") failed.push_back(name);
  }
  doc["thresholds"] = thresholds;
  doc["failed_criteria"] = failed;
  doc["summary"] = run.summary.is_object() ? run.summary : Json(nullptr);
  return doc;
}

std::optional<std::string> writeJunit(const std::string& path, const std::vector<RunResult>& runs) {
  if (path.empty()) return std::nullopt;
  std::string error;
  if (!report::writeFileAtomically(path, junitXml(runs), &error)) return "--junit " + error + " (name a writable file)";
  return std::nullopt;
}

std::optional<std::string> writeSummaryJson(const std::string& path, const RunResult& run) {
  if (path.empty()) return std::nullopt;
  std::string error;
  // Replaced, not thrown: a run id or a note with bytes that are not UTF-8
  // must not cost the whole document.
  std::string text = summaryDocument(run).dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
  if (!report::writeFileAtomically(path, text, &error)) return "--summary-json " + error + " (name a writable file)";
  return std::nullopt;
}

}  // namespace sshsoak::ci
