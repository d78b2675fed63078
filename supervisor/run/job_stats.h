// One worker's jobs over one --job-report-secs interval: the job_stats line
// (docs/reference.md, "Jobs lines"). Fixed memory: five histograms (made on
// the worker's first result), counts, and at most MAX_FAILURE_KINDS failure
// kinds with one example each; reset after every line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "events.capnp.h"
#include "shared/histogram.h"
#include "supervisor/log_line.h"
#include "supervisor/run/job_queue.h"

namespace sshsoak::jobs {

// One job's result as the rollup counts it (the agent's, or one the
// supervisor made for a dead worker).
struct JobSample {
  wire::JobOutcome outcome = wire::JobOutcome::DONE;
  bool reused = false;
  uint64_t queueWaitUs = 0;
  uint64_t connectUs = 0;    // 0: it opened no connection
  uint64_t livenessUs = 0;   // 0: no check
  uint64_t runUs = 0;
  uint64_t totalUs = 0;
  uint32_t commandsRun = 0;
  uint32_t commandsFailed = 0;
  uint32_t deadReplaced = 0;
  uint32_t connectionsOpened = 0;
  std::string_view failureKind;  // "": none
  std::string_view message;
};

class JobStats {
 public:
  // Kinds beyond this many in one interval are counted as "other" (the
  // agent's kinds are a fixed list; this bounds a misbehaving one).
  static constexpr size_t MAX_FAILURE_KINDS = 16;
  static constexpr size_t MAX_EXAMPLE_CHARS = 300;

  void add(const JobSample& s);
  bool empty() const { return results_ == 0; }
  uint64_t results() const { return results_; }
  // The interval's job_stats line; then the accumulator starts afresh.
  Json takeLine(int64_t wallNs, uint32_t worker, const std::string& host, int64_t intervalMs, Phase phase);

 private:
  struct Histograms {
    LatencyHistogram queueWait, connect, liveness, run, total;
  };
  struct FailureKind {
    std::string kind;
    uint64_t count = 0;
    std::string example;
  };
  void reset();

  std::unique_ptr<Histograms> h_;
  uint64_t results_ = 0;
  uint64_t done_ = 0, failed_ = 0, aborted_ = 0, cancelled_ = 0;
  uint64_t reused_ = 0, connectionsOpened_ = 0, deadReplaced_ = 0, commandsRun_ = 0, commandsFailed_ = 0;
  std::vector<FailureKind> failures_;  // at most MAX_FAILURE_KINDS
};

}  // namespace sshsoak::jobs
