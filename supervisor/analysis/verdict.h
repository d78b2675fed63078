// The verdict: each pass criterion (docs/runbook.md, "Verdict table") with its
// measured value, threshold and result. A criterion with nothing to measure
// (no interrupts, no samples) is n/a and does not fail the run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/cli.h"
#include "supervisor/log_line.h"

namespace sshsoak {

// The limits the criteria judge against. Their defaults live in one place,
// cli::Options (the --max-... and --min-... flags).
struct Thresholds {
  uint32_t maxAbnormalEnds;
  double minReconnectRatePct;
  uint32_t maxReconnectP95Ms;
  double maxMemoryMb;
  double maxCpuPct;
  bool judgeCpu = true;  // false: the load workloads without an explicit --max-cpu-pct
  // The workloads' own criteria (churn, transfer); used on runs of that workload.
  double minConnRatePerSec = 0;
  uint32_t maxConnFailures = 0;
  uint32_t maxConnectP99Ms = 0;
  double minThroughputMbPerSec = 0;
  uint32_t maxJobFailures = 0;
  uint32_t maxJobP95Ms = 0;
  // Long runs: the leak criteria.
  double maxMemorySlopeMbPerH = 1.0;
  uint32_t maxFdGrowth = 0;
  uint32_t maxCloseWaitSockets = 0;
  // Sampling coverage (issue 15): the longest time without a resource
  // sample: 3 sample intervals, and at least 5 s (a loaded machine's late
  // pass is not a hole).
  double maxUnsampledSecs = 5;
  // --max-memory-mb / --max-cpu-pct not given: scaled with the sessions
  // above 10 (docs/reference.md, "Long runs"); the note says so.
  uint32_t scaledForSessions = 0;  // 0: neither was scaled
  bool memoryScaled = false, cpuScaled = false;
};
Thresholds thresholdsOf(const cli::Options& options);
// Issue 17: the thresholds a summary's verdict list was judged against (a
// merge judges the whole run by its shards' thresholds); criteria the list
// lacks keep cli::Options' defaults.
Thresholds thresholdsOfVerdict(const Json& verdict);

struct VerdictInputs {
  uint32_t abnormalEnds = 0;
  uint32_t interrupts = 0;
  uint32_t reconnects = 0;
  std::optional<int64_t> reconnectP95Ms;
  std::optional<uint64_t> peakTotalPssKb;
  std::optional<uint64_t> peakTotalRssKb;  // reported beside PSS, not judged
  std::optional<double> meanTotalCpuPct;  // steady state: ticks after warm-up
  double warmupSecs = 0;
  // The workload's own (workload_model.h); judged on runs of that workload.
  cli::WorkloadKind workload = cli::WorkloadKind::PTY;
  std::optional<double> connRatePerSec;  // achieved; a ramp's: the best step before the breaking point
  bool connRateFromRamp = false;
  uint64_t connAttempted = 0;
  uint64_t connFailures = 0;
  std::optional<double> connectP99Ms;  // "total": from each connection's intended start
  std::optional<double> throughputMbPerSec;  // all sessions' bytes over the transfer span
  uint64_t corruptRounds = 0;
  // Jobs: the outcomes over every phase, and whether each job is accounted for.
  uint64_t jobsResults = 0;
  uint64_t jobsFailed = 0, jobsAborted = 0;
  std::optional<int64_t> jobsLost;  // none: the queue's final job_queue line is missing
  uint64_t jobsUnaccounted = 0;     // then: submitted - results at the last report
  std::optional<double> jobP95Ms;   // "total": queue wait + connect + run
  // Long runs (leak_model.h, from the resource_sample and (re)connected
  // lines). None: too short to fit, said in leakNa.
  std::optional<double> memorySlopeMbPerH;  // the worst process's RSS slope after warm-up (Theil-Sen)
  std::string memorySlopeWho;               // which process, for the note: "agent 3 (pid 1234)"
  std::optional<int64_t> fdGrowth;          // the worst process's fds gained after warm-up or across a reconnect
  std::string fdGrowthWho;
  std::optional<uint32_t> closeWaitSockets; // the harness's CLOSE_WAIT sockets at the last sample
  std::string leakNa;                       // why the leak criteria are n/a ("" when judged)
  uint64_t samplesTaken = 0;                // the sampler's passes, and those it missed (a loaded machine)
  uint64_t samplesMissed = 0;
  // The longest time between two resource samples (none: fewer than two)
  // and when it began (ISO): a supervisor stopped or stalled for a while.
  std::optional<int64_t> longestUnsampledMs;
  std::string unsampledFrom;
};

// A criterion's outcome; n/a: nothing to measure.
enum class Verdict { PASS, FAIL, NA };

struct Criterion {
  std::string name;        // "abnormal_ends", ...: stable, for scripts
  std::string label;       // for people
  std::optional<double> measured;
  double threshold = 0;
  std::string comparison;  // "<=", ">=", "<", "=="
  std::string unit;
  Verdict result = Verdict::NA;
  std::string note;
};

std::vector<Criterion> evaluate(const VerdictInputs& in, const Thresholds& t);
bool allPassed(const std::vector<Criterion>& criteria);  // n/a counts as passed
const char* resultName(Verdict r);
// The summary's "verdict" list; main prints the table from it.
Json verdictJson(const std::vector<Criterion>& criteria);

}  // namespace sshsoak
