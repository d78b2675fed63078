// The verdict where CI and scripts look (docs/reference.md, "CI results:
// --junit and --summary-json"): JUnit XML, one testcase per criterion, and a
// k6-style end-of-run JSON document. Both are functions of a summary object
// (the summary line, a checkpoint line, or the summary `report --merge`
// builds) and the run's settings (its run_started line), so the live run, a
// checkpoint, `sshsoak report` and `report --merge` write the same files from
// the same figures.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/log_line.h"

namespace sshsoak::report {
struct Run;
}

namespace sshsoak::ci {

struct RunResult {
  std::string runId;
  std::string source;  // the log it came from ("" for none)
  // The summary line's object, or a checkpoint line's (the run did not end,
  // or not yet), or null: no figures at all (killed before its first checkpoint).
  Json summary;
  Json settings;  // the run's run_started line; null when the log lost it
  // What sshsoak returned for the run (or would have: 0 passed, 1 a criterion
  // failed, run_aborted's code); none while the run has not ended.
  std::optional<int> exitCode;
};

// A run as `sshsoak report` read it (report.h); the exit code a single run's
// rules give it.
RunResult resultOf(const report::Run& run);
// 0 when the summary's criteria all passed, 1 when one failed; none for a
// checkpoint or no summary.
std::optional<int> exitCodeOf(const Json& summary);

// One <testsuite> per run inside <testsuites>; valid against the common JUnit
// schema (Jenkins xunit's junit-10.xsd, Surefire, GitLab). Every string is
// escaped, and characters XML 1.0 cannot hold are replaced.
std::string junitXml(const std::vector<RunResult>& runs);
// The --summary-json document of one run (its shape: docs/reference.md).
Json summaryDocument(const RunResult& run);

// Text safe in XML 1.0 content and in a double-quoted attribute: & < > " '
// escaped, tab / newline / carriage return as character references (an
// attribute keeps them), other control characters and invalid UTF-8 as U+FFFD.
std::string xmlEscape(std::string_view text);

// Writes the files the flags name (an empty path: not asked for), each as a
// whole or not at all (temp file + rename). On failure: the flag, path and
// reason, for exit 3.
std::optional<std::string> writeJunit(const std::string& path, const std::vector<RunResult>& runs);
std::optional<std::string> writeSummaryJson(const std::string& path, const RunResult& run);

}  // namespace sshsoak::ci
