// What each workload measured (churn, transfer, jobs, the PTY's keystroke echo),
// learned from the JSONL lines the agents' events become (log_line.cpp).
// RunModel feeds it every line; the summary's "workload" object, the
// verdict's workload criteria, the live status line, the console, the
// result table and the HTML all read their figures from here.
//
// Nothing here grows with run time: latencies merge into fixed-size
// histograms (shared/histogram.h), time series coarsen when full, and what
// grows does so with the run's sessions or ramp steps, never its events.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "shared/histogram.h"
#include "supervisor/cli.h"
#include "supervisor/log_line.h"

namespace sshsoak {

// A time series of sums in equal buckets from the run's start, at most
// MAX_POINTS of them: when full, the bucket width doubles and neighbours
// merge, so a week-long run's chart has as many points as a minute's.
class BoundedSeries {
 public:
  static constexpr size_t MAX_POINTS = 1000;
  explicit BoundedSeries(size_t channels, int64_t widthMs = 1000) : channels_(channels), widthMs_(widthMs) {}

  // Adds v to channel ch at t ms after the run's start.
  void add(int64_t tMs, size_t ch, double v);
  // Adds v spread evenly over [fromMs, toMs).
  void addSpread(int64_t fromMs, int64_t toMs, size_t ch, double v);
  // Keeps the largest value seen in the bucket (a target, a maximum).
  void max(int64_t tMs, size_t ch, double v);

  int64_t widthMs() const { return widthMs_; }
  size_t size() const { return buckets_.size() / channels_; }
  double at(size_t bucket, size_t ch) const { return buckets_[bucket * channels_ + ch]; }
  // Per channel: (bucket midpoint in s, sum / bucket width in s), the
  // points of a rate chart; buckets after the last with data are left out.
  std::vector<std::pair<double, double>> ratePoints(size_t ch, double scale = 1.0) const;
  std::vector<std::pair<double, double>> valuePoints(size_t ch) const;

 private:
  double& slot(int64_t tMs, size_t ch);
  std::vector<uint8_t> isMax_;
  size_t channels_;
  int64_t widthMs_;
  std::vector<double> buckets_;  // size() x channels_, row-major
  int64_t endMs_ = 0;            // the latest time added: the last bucket's rate is over what it covers
};

struct PhaseFigures {  // one latency histogram as the summary shows it, ms
  uint64_t n = 0;
  double p50Ms = 0, p90Ms = 0, p99Ms = 0, p999Ms = 0, maxMs = 0;
};
PhaseFigures figuresOf(const LatencyHistogram& h);
Json figuresJson(const LatencyHistogram& h);
// Issue 17 (report --merge): the jobs summary's latency shape {n, p50, p95,
// p99, max} and one percentile of it, ms, the same definitions the run uses.
Json jobLatencyFiguresJson(const LatencyHistogram& h);
std::optional<double> latencyPercentileMs(const LatencyHistogram& h, double pct);

// The churn phases in the order people read them (ChurnStats.histograms).
inline const char* const CHURN_PHASES[] = {"tcp", "kex", "auth", "exec", "close", "total", "service"};

struct ChurnFigures {
  uint64_t attempted = 0, succeeded = 0, failed = 0;
  uint64_t cpuMs = 0;
  uint32_t maxBehindMs = 0;
  uint64_t connectionLines = 0;  // --log-each-connection lines (already in the histograms)
  std::optional<int64_t> firstStartNs, lastEndNs;  // the churn span: intervals' starts and ends
  std::map<std::string, LatencyHistogram> phases;
  struct Failure {
    uint64_t count = 0;
    std::string example;
  };
  std::map<std::string, Failure> failures;
  BoundedSeries series{3};  // 0 succeeded, 1 failed (sums), 2 target (max)

  // A ramp's steps (cli::ChurnRate::targetAt defines them).
  struct Step {
    double targetPerSec = 0;
    uint64_t attempted = 0, succeeded = 0, failed = 0;
    int64_t fromMs = 0, toMs = 0;  // the step's time that the reports covered, from the schedule's start
    bool seen = false;
    // The step's "total" histogram, sparse: a ramp may have many steps, and
    // a full counts array is 31 KB.
    std::map<size_t, uint64_t> totalCounts;
    double achievedPerSec() const;
    std::optional<double> p99TotalMs() const;
  };
  std::vector<Step> steps;

  double spanSecs() const;
  std::optional<double> achievedPerSec() const;  // succeeded over the churn span
};

struct TransferFigures {
  struct Direction {
    uint64_t rounds = 0, bytes = 0, cpuMs = 0, ms = 0;
    LatencyHistogram roundRate;  // MB/s per round, in units of 0.01 MB/s
    double minMbPerSec = 0, maxMbPerSec = 0;
    uint32_t windowBytes = 0, writeBytes = 0;  // the last round's
    std::optional<int64_t> firstStartNs, lastEndNs;
  };
  std::map<std::string, Direction> directions;  // "up", "down"
  uint64_t corruptRounds = 0;
  std::optional<Json> firstCorrupt;
  uint64_t stalls = 0, stalledMs = 0, maxStallMs = 0;
  uint64_t errors = 0;
  std::string firstError;
  struct Session {
    uint64_t bytes = 0;
    int64_t firstStartNs = 0, lastEndNs = 0;
  };
  std::map<uint32_t, Session> sessions;
  BoundedSeries series{2};  // bytes: 0 up, 1 down
  std::optional<int64_t> firstStartNs, lastEndNs;

  uint64_t bytes() const;
  double spanSecs() const;
  std::optional<double> aggregateMbPerSec() const;
  std::vector<double> sessionMbPerSec() const;  // one per session that moved bytes, sorted
};

// --workload jobs (docs/reference.md, "Jobs"): the figures of the run's
// job_stats, job_queue, job, job_connection_closed, job_retried,
// job_rejected and job_phase lines, kept per phase (reuse_off, reuse_on;
// a run without --compare-reuse has one) and summed on demand. Nothing
// grows with the run: fixed histograms, one bounded series, maps keyed by
// phase, failure kind or close reason, the first few failed jobs.
inline const char* const JOB_LATENCIES[] = {"queue_wait", "connect", "liveness", "run", "total"};
inline const char* const JOB_CLOSE_REASONS[] = {"idle", "lru", "dead", "dropped", "tainted"};

struct JobsFigures {
  struct Failure {
    uint64_t count = 0;
    std::string example;
  };
  // A job_queue line's counts: the run's, over every phase so far.
  struct Queue {
    uint64_t submitted = 0, queued = 0, inFlight = 0, results = 0, retried = 0, shed = 0, notStarted = 0;
    bool final = false;
  };
  struct Phase {
    // Sums of the phase's job_stats lines.
    uint64_t done = 0, failed = 0, aborted = 0, cancelled = 0;
    uint64_t reused = 0, connectionsOpened = 0, deadReplaced = 0, commandsRun = 0, commandsFailed = 0;
    std::map<std::string, LatencyHistogram> latency;  // JOB_LATENCIES, merged exactly
    std::optional<int64_t> firstStartNs, lastEndNs;   // the job_stats intervals' span
    // Its job_phase line, once the phase ended: the phase's own account.
    bool ended = false;
    double secs = 0;
    uint64_t phaseSubmitted = 0, phaseNotStarted = 0;
    std::optional<int64_t> serverPid;
    std::optional<uint64_t> serverCpuMs;

    uint64_t results() const { return done + failed + aborted + cancelled; }
    // job_phase's secs, else the span of its job_stats intervals.
    double spanSecs() const;
    std::optional<double> jobsPerSec() const;
    // job_phase's submitted - (done + failed + aborted + cancelled +
    // not_started); none before the phase's job_phase line.
    std::optional<int64_t> lost() const;
    // Mean connect + liveness time per job with a result, ms (the setup reuse saves).
    std::optional<double> setupMsPerJob() const;
  };

  std::string reuse;     // run_started's: "on", "off", "compare"; "" unknown
  uint32_t workers = 0;  // run_started's sessions (0: the workers seen in job_stats)
  std::map<std::string, Phase> phases;      // "reuse_off" sorts before "reuse_on": the order they run in
  std::optional<Queue> queue;               // the final job_queue, else the latest (a killed run)
  std::map<std::string, Failure> failures;  // job_stats' failures, by kind
  std::map<std::string, uint64_t> closes;   // job_connection_closed by reason
  uint64_t retried = 0, rejected = 0;       // job_retried, job_rejected lines
  uint64_t detailLines = 0;                 // job lines (failures; every job with --log-each-job)
  static constexpr size_t FIRST_FAILURES = 5;
  std::vector<Json> firstFailures;          // the first failed, aborted or cancelled job lines' essentials
  std::set<uint32_t> workersSeen;           // session ids of job_stats lines (bounded by --sessions)
  // Jobs per second over time: 0 results of reuse_off, 1 results of reuse_on, 2 failed + aborted.
  BoundedSeries series{3};

  bool empty() const { return phases.empty() && !queue; }
  // The final (else the latest) job_queue's, else the ended phases' job_phase's.
  uint64_t submitted() const;
  uint64_t results() const;
  uint64_t sum(uint64_t Phase::*f) const;
  double spanSecs() const;  // the phases' spans added (they run one after another)
  bool accounted() const { return queue && queue->final; }  // the run's final job_queue is in
  // submitted - (done + failed + aborted + cancelled + not_started); none
  // without the final job_queue (a killed run cannot account for its jobs).
  std::optional<int64_t> lost() const;
  // A latency over every phase, merged.
  LatencyHistogram latency(const std::string& name) const;
  // The job_p95_ms criterion's figure: "total" (queue wait + connect + run) p95, ms; none without a job.
  std::optional<double> totalP95Ms() const;
  uint32_t workerCount() const { return workers ? workers : static_cast<uint32_t>(workersSeen.size()); }
};

// Where a ramp broke: the first step whose failures, p99 or achieved rate
// crossed its limit.
struct BreakingPoint {
  size_t step = 0;
  double targetPerSec = 0;
  std::string reason;
};

class WorkloadModel {
 public:
  void onLine(const Json& line, const std::string& event, int64_t ns, std::optional<uint32_t> session);
  // What run_started says, for a reader that never sees that line (the live
  // run's model starts after it is written): the workload, its churn
  // schedule and the ramp's limits; startNs: when the schedule began.
  void configure(cli::WorkloadKind kind, std::optional<cli::ChurnRate> rate, uint32_t rampSteps,
                 uint32_t maxConnFailures, uint32_t maxConnectP99Ms, int64_t startNs);
  // run_started's jobs fields: reuse "on", "off" or "compare"; workers: --sessions.
  void configureJobs(const std::string& reuse, uint32_t workers);
  // Whether PTY cycles, exec polls and echo samples are counted from the
  // rollup lines (pty_stats, exec_poll_stats) or from the per-cycle lines
  // (pty_cycle, exec_poll). A log whose run_started names log_detail has
  // rollups (a --log-detail full log has both kinds: counting both would
  // count twice); an older one has per-cycle lines only. The live run has
  // rollups.
  void countFromRollups(bool rollups) { fromRollups_ = rollups; }
  bool fromRollups() const { return fromRollups_; }

  cli::WorkloadKind kind() const { return kind_; }
  const std::optional<cli::ChurnRate>& churnRate() const { return churnRate_; }
  const ChurnFigures& churn() const { return churn_; }
  const TransferFigures& transfer() const { return transfer_; }
  const LatencyHistogram& echo() const { return echo_; }
  const JobsFigures& jobs() const { return jobs_; }
  int64_t startNs() const { return startNs_.value_or(0); }

  std::optional<BreakingPoint> breakingPoint() const;
  // The churn verdict's conn_rate: the run's achieved rate, or on a ramp
  // the highest step rate achieved before the breaking point.
  std::optional<double> connRatePerSec() const;

  // The summary's "workload" object.
  Json json() const;
  // The live status line's part ("" for a PTY run without figures yet).
  std::string statusText() const;

 private:
  void onRunStarted(const Json& line, int64_t ns);
  void onChurnStats(const Json& line, int64_t ns);
  void onTransferRound(const Json& line, int64_t ns, std::optional<uint32_t> session);
  void onJobsLine(const Json& line, const std::string& event, int64_t ns, std::optional<uint32_t> session);
  void onJobStats(const Json& line, int64_t ns, std::optional<uint32_t> session);
  // A line's phase, or the phase of the latest line that named one.
  const std::string& notePhase(const Json& line);
  JobsFigures::Phase& jobsPhase(const Json& line) { return jobs_.phases[notePhase(line)]; }
  Json jobsJson() const;
  std::string jobsStatus() const;

  cli::WorkloadKind kind_ = cli::WorkloadKind::PTY;
  std::optional<cli::ChurnRate> churnRate_;
  uint32_t rampSteps_ = 10;
  uint32_t maxConnFailures_ = 0;  // the breaking point's limits: run_started's, else the flags' defaults
  uint32_t maxConnectP99Ms_ = 1000;
  std::optional<int64_t> startNs_;
  ChurnFigures churn_;
  TransferFigures transfer_;
  LatencyHistogram echo_;
  bool fromRollups_ = false;
  JobsFigures jobs_;
  std::string jobsCurrentPhase_;

  // The last few seconds of reports for the live status line, pruned by time.
  struct RecentChurn {
    int64_t ns;
    uint32_t intervalMs;
    uint64_t succeeded;
    double target;
    Json counts;  // the "total" histogram's sparse counts
  };
  std::deque<RecentChurn> recentChurn_;
  struct RecentRound {
    int64_t startNs, endNs;
    uint64_t bytes;
  };
  std::deque<RecentRound> recentRounds_;
  struct RecentJobs {
    int64_t ns;
    uint32_t intervalMs;
    uint64_t done;
    Json total;  // the interval's "total" histogram
  };
  std::deque<RecentJobs> recentJobs_;
  std::optional<JobsFigures::Queue> lastQueue_;  // the status line's queue and in-flight figures
};

}  // namespace sshsoak
