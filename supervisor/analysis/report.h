// `sshsoak report RUN.jsonl [MORE.jsonl ...]`: the result table teams fill
// in after each soak run (the test plan's data recording table), one row
// per run, computed from the event lines themselves, plus the verdict per
// criterion. A log may hold several runs (the log is appended to); a log
// cut short by a killed run is read up to the damage, with a warning.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/run_accumulator.h"

namespace sshsoak::report {

struct Run {
  std::string source;  // the file it came from
  std::string runId;
  // The run as read, line by line (run_accumulator.h): never the lines themselves.
  std::shared_ptr<const RunAccumulator> acc;
  bool complete = false;    // it has its summary line
  std::optional<uint32_t> checkpoint;  // no summary: the figures are this checkpoint's

  // Derived: the run model's figures (run_model.h) and the summary line's.
  std::string topology;  // "A" (distinct hosts), "B" (one host repeated), "A+B"
  uint32_t sessions = 0;
  double durationSecs = 0;
  std::string interruptType;  // "None", "Injected drop x1", ...
  uint32_t interrupts = 0;
  uint32_t recovered = 0;
  std::vector<int64_t> reconnectMs;
  std::optional<uint32_t> abnormalEnds;
  std::optional<double> cpuMeanPct;
  std::optional<double> memPeakMb;  // total PSS, as the verdict judges
  std::string notes;                 // failed criteria, incompleteness
  Json verdict;                      // the summary's list, or null
  Json workload;                     // the run model's "workload" object (workload_model.h)
  Json faults;                       // the run model's "faults" (fault_model.h), open windows closed at the run's end
  uint64_t faultsIgnored = 0;        // windows beyond the model's cap
  Json pacer;                        // the run model's "pacer"
};

struct Input {
  std::vector<Run> runs;
  std::vector<std::string> warnings;
  std::vector<std::string> errors;  // files that could not be read at all
};

// Streams each log once (a rotated set LOG.N ... LOG.1, LOG as one), one
// accumulator per run; no run's lines are kept.
Input read(const std::vector<std::string>& paths);
// Splits already-parsed lines into runs and derives their figures.
std::vector<Run> splitRuns(const std::string& source, const std::vector<Json>& lines);
// A run from its accumulator (the live run's own, at a checkpoint or at the end).
Run runOf(const std::string& source, std::shared_ptr<const RunAccumulator> acc);
void derive(Run& run);
// The rotated parts of LOG that exist, oldest first, then LOG itself.
std::vector<std::string> rotatedSet(const std::string& path);
// Writes text to path as a whole or not at all: a temp file in the same
// directory, fsync, rename. False with *error set when it cannot.
bool writeFileAtomically(const std::string& path, const std::string& text, std::string* error);

std::string markdown(const Input& input);
// The summary's churn phases in reading order (tcp ... total, service, then any other).
std::vector<std::string> phaseOrder(const Json& phases);
// The workload's figures as Markdown; "" for a PTY run without echo figures.
std::string workloadMarkdown(const std::string& runId, const Json& workload);
std::string formatDuration(double secs);

// One fault window as the console, the result table and the HTML show it
// (from an object of the summary's `faults`).
struct FaultRow {
  std::string fault;     // its spec, "#N" for a repeat's Nth window
  std::string window;    // "20.0-50.0 s", "20.0 s-end (open at end)"
  std::string affected, noticed, notice, recovered, recover;
};
FaultRow faultRow(const Json& window);
// The per-window table as Markdown, at most maxRows rows (the rest counted);
// "" without fault windows.
std::string faultsMarkdown(const std::string& runId, const Json& faults, uint64_t ignored, size_t maxRows);
// The pacer in one sentence; "" for fixed pacing that never changed rate.
std::string pacerText(const Json& pacer);

// The `report` subcommand; returns the exit code.
int main(int argc, const char* const* argv);

}  // namespace sshsoak::report
