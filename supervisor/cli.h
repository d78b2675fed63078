// The supervisor's command line: every flag of the predecessor with its
// default, plus ours. Options is the one place where a default or a
// threshold is written; everything else is passed its value. Parsing is pure
// (no side effects beyond reading the files it must check), so the tests can
// drive it directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events.capnp.h"
#include "shared/fault_spec.h"
#include "shared/result.h"
#include "shared/token_bucket.h"
#include "supervisor/run/faults.h"

namespace sshsoak::cli {

struct Target {
  std::string host;
  uint16_t port = 22;
  std::string text() const;  // "host:port", "[v6]:port"
};

// --workload: what every agent does. Pty is the long-lived session with a
// PTY stream and exec polls (the predecessor's, the default).
enum class WorkloadKind { PTY, CHURN, TRANSFER, JOBS };
std::string_view workloadName(WorkloadKind kind);

// --churn-rate: "R" (constant) or "A..B/Ts" (a ramp from A to B over T
// seconds, in --churn-ramp-steps equal steps, then B to the end).
struct ChurnRate {
  double startPerSec = 0;  // 0: as fast as the server takes them
  double endPerSec = 0;
  uint32_t rampSecs = 0;  // 0: constant
  bool ramp() const { return rampSecs > 0; }
  // The run-wide target t ms after the schedule began.
  double targetAt(int64_t ms, uint32_t steps) const;
  std::string text() const;  // as the flag takes it
};

// One job of --workload jobs (--jobs-file's line, or generated): a target
// and commands run in order. Docs: docs/reference.md, "Jobs".
struct JobSpec {
  std::string name;             // the file's "id", or "" (the log then shows the line)
  std::optional<Target> target; // none: the run's targets, round-robin
  std::string user;             // "": --user (the embedded sshd's user without --targets)
  std::vector<std::string> commands;
  uint32_t commandTimeoutMs = 0;  // 0: --command-timeout-secs
  uint32_t line = 0;            // its line in --jobs-file; 0: generated
};

// A --jobs-file line that was skipped (--skip-bad-jobs): logged as job_rejected.
struct RejectedJob {
  uint32_t line = 0;
  std::string field;            // the field at fault ("" : the line is not a JSON object)
  std::string message;
};

// --fault / --fault-file (issue 16): a network fault for sshsoak-proxy, with
// the SPEC as the user wrote it (the net_fault_* lines show it).
struct NetFault {
  FaultSpec spec;
  std::string given;
};

// --log-detail: high-rate detail (each PTY cycle, each exec poll) as
// per-session rollups (pty_stats, exec_poll_stats), or also one line each.
enum class LogDetail { ROLLUP, FULL };

// --churn-report-secs when not given and the rate does not ramp.
constexpr uint32_t CHURN_STEADY_REPORT_SECS = 5;

// --on-log-error: what a failed write to the log does (docs/reference.md, "Hardening").
enum class OnLogError { STOP, CONSOLE };

struct Options {
  std::vector<Target> targets;  // empty: the embedded private sshd
  std::vector<Target> slots;    // targets repeated to fill the sessions
  std::string user;
  std::string keyPath;
  std::string passphrase;  // secret: never logged, never in an agent's argv or env
  bool passphraseOnCommandLine = false;
  std::string passphraseEnvName;  // removed from our environment once read
  uint32_t durationSecs = 1800;
  bool durationGiven = false;
  uint32_t embeddedDurationSecs = 60;  // without --duration-secs, with the private sshd
  uint32_t pollIntervalSecs = 5;
  wire::Intensity intensity = wire::Intensity::MEDIUM;
  std::optional<uint32_t> disconnectAfterSecs;
  uint32_t maxReconnectAttempts = 3;
  uint32_t reconnectTimeoutSecs = 15;
  std::string logPath = "spike2_results.jsonl";
  uint32_t sessions = 10;
  wire::HostKeyPolicy hostKeyPolicy = wire::HostKeyPolicy::ACCEPT_NEW;
  std::string knownHostsPath;  // default ~/.ssh/known_hosts
  uint32_t keepaliveIntervalSecs = 5;
  uint32_t keepaliveCountMax = 3;
  uint32_t shutdownTimeoutSecs = 5;
  double ptyIntervalSecs = 1.0;
  // Reconnect pacing: full-jitter backoff, then a token from the run's
  // shared bucket (burst below sshd's MaxStartups start of 10).
  uint32_t backoffBaseMs = 500;
  uint32_t backoffCapMs = 8000;
  double tokenRatePerSec = TOKEN_BUCKET_DEFAULT_RATE_PER_SEC;
  uint32_t tokenBurst = TOKEN_BUCKET_DEFAULT_BURST;
  // --reconnect-pacing (issue 16): adaptive moves the bucket's rate with
  // what the agents see of the server (shared/adaptive_pacer.h).
  ReconnectPacing reconnectPacing = DEFAULT_RECONNECT_PACING;
  std::vector<DropSpec> drops;          // --drop and --disconnect-after-secs
  bool dropsGiven = false;              // any of them given (a shard may keep none of its own)
  std::vector<FaultCommand> faultCommands;
  std::vector<NetFault> netFaults;      // --fault, then --fault-file's lines; none: no relay in the path
  std::string htmlPath;  // --html: a self-contained HTML report at the end
  // Issue 17, CI results (analysis/ci_results.h): at each checkpoint and at the end.
  std::string junitPath;        // --junit: the verdict as JUnit XML
  std::string summaryJsonPath;  // --summary-json: the summary and verdict as one JSON document
  std::string agentPath;  // default: sshsoak-agent beside sshsoak
  bool crashAgentsForTesting = false;
  std::optional<uint32_t> crashSessionForTesting;  // test only: this slot's agent aborts at start

  // Supervision: this many agent crashes of one slot within the window give
  // the slot up (agent_gave_up); before that, restarts back off.
  uint32_t restartMax = 5;
  uint32_t restartWindowSecs = 60;
  // Not flags: the restart backoff (supervisord/systemd's shape): the first
  // restart after this delay, doubling up to the cap, back to the first
  // delay once an agent had been up for the stable uptime.
  uint32_t restartMinDelayMs = 200;
  uint32_t restartMaxDelayMs = 30000;
  uint32_t restartStableUptimeMs = 30000;

  // Resource accounting from /proc, and the verdict's thresholds.
  uint32_t sampleIntervalSecs = 1;
  uint32_t warmupSecs = 60;  // capped at half the run; steady-state CPU, fd and RSS-growth figures start after it
  uint32_t maxAbnormalEnds = 0;
  double minReconnectRatePct = 90.0;
  uint32_t maxReconnectP95Ms = 15000;
  double maxMemoryMb = 200.0;  // peak total PSS of supervisor + agents, strictly below
  double maxCpuPct = 5.0;      // mean total CPU of supervisor + agents after warm-up, % of one core, strictly below
  std::string pidFile;

  // --workload and its own flags (docs/reference.md, "Workloads").
  WorkloadKind workload = WorkloadKind::PTY;
  ChurnRate churnRate{100, 100, 0};
  uint32_t churnRampSteps = 10;
  std::string churnCommand = "true";  // empty: no channel, connect + auth + close only
  // churn_stats per agent this often: 1 s on a ramp (a report belongs to the
  // step its midpoint falls in, so it must be short beside a step), and
  // CHURN_STEADY_REPORT_SECS at a steady rate unless given: ~1 KB a line.
  uint32_t churnReportSecs = 1;
  bool logEachConnection = false;
  bool transferUp = true;
  bool transferDown = true;
  uint32_t transferMb = 64;  // per round, MB = 10^6 bytes
  std::string transferUpCommand = "sha256sum";
  std::string transferDownCommand = "exec 3>&1; head -c {bytes} /dev/urandom | tee /dev/fd/3 | sha256sum >&2";
  uint32_t transferWindowKb = 2048;
  uint32_t transferWriteKb = 256;
  uint32_t transferStallSecs = 2;
  uint32_t transferPauseMs = 0;
  // The workloads' verdict criteria (defaults from the stress guide).
  double minConnRatePerSec = 100;
  uint32_t maxConnFailures = 0;
  uint32_t maxConnectP99Ms = 1000;
  double minThroughputMbPerSec = 50;
  // --max-cpu-pct judges the load workloads (churn, transfer) only when
  // given: their CPU is what they measure, not a harness cost.
  bool maxCpuPctGiven = false;
  bool minConnRateGiven = false;  // without it a constant --churn-rate below 100 judges against 95 % of itself

  // --workload jobs: the sessions are workers; the supervisor's queue hands
  // each one job at a time (docs/reference.md, "Jobs").
  std::string jobsFile;                 // JSONL, one job a line; empty: generated jobs
  std::vector<JobSpec> jobs;            // --jobs-file's jobs, read and checked at start
  std::vector<RejectedJob> rejectedJobs;  // --skip-bad-jobs: the lines left out
  bool skipBadJobs = false;             // without it a bad line refuses the run at start
  double jobRatePerSec = 10;            // generated jobs per second, whole run; 0: as fast as workers take them
  uint64_t jobCount = 0;                // generated jobs in all (per phase with --compare-reuse); 0: until the end
  std::vector<std::string> jobCommands = {"uname -n", "date +%s", "true"};  // --job-commands 'a;b;c'
  bool reuse = true;                    // --reuse on|off
  uint32_t maxIdleSecs = 60;            // 0: never
  uint32_t maxConnectionsPerWorker = 4;
  wire::FailureStrategy failureStrategy = wire::FailureStrategy::ABORT_FIRST;
  uint32_t failureThreshold = 1;        // abort-after's N
  uint32_t commandTimeoutSecs = 30;
  bool livenessCheck = true;            // --no-liveness-check turns it off
  uint32_t jobReportSecs = 10;          // per-worker job_stats rollups
  bool logEachJob = false;              // a job line per job, not only per failure
  uint64_t maxJobQueue = 10000;         // generated jobs beyond this many waiting are shed (counted)
  bool compareReuse = false;            // reuse off, then on, same jobs: one A/B answer
  int serverPid = 0;                    // --server-pid: the target sshd's listener here (embedded: its own)
  uint32_t maxJobFailures = 0;          // verdict: failed + aborted jobs allowed
  uint32_t maxJobP95Ms = 10000;         // verdict: job latency (queue wait + connect + run) p95

  // Long runs (docs/reference.md, "Long runs"): a log that stays small, a
  // sampler that costs little, checkpoints and the leak verdict.
  LogDetail logDetail = LogDetail::ROLLUP;
  uint32_t rollupSecs = 60;             // per-session pty_stats / exec_poll_stats
  uint32_t detailSampleSecs = 60;       // smaps_rollup, fd lists, sockets, sshd processes; one resource_sample line each
  uint32_t checkpointSecs = 300;        // a checkpoint line and the HTML rewritten; 0: none
  uint32_t logMaxMb = 0;                // rotate the log at this size (0: never)
  uint32_t logKeep = 9;                 // rotated files kept (LOG.1 .. LOG.N); older ones are deleted
  uint32_t leakMinFitSecs = 600;        // the leak criteria need this much sampled time after warm-up, else n/a
  double maxMemorySlopeMbPerH = 1.0;    // verdict: worst process's RSS slope after warm-up, strictly below
  uint32_t maxFdGrowth = 0;             // verdict: worst process's fds growth after warm-up (and after reconnects)
  uint32_t maxCloseWaitSockets = 0;     // verdict: CLOSE_WAIT sockets of the harness at the end
  bool maxMemoryMbGiven = false;        // without it, --max-memory-mb scales with --sessions above 10
  bool leakFdForTesting = false;        // test only: every agent keeps one more fd per PTY cycle
  uint32_t leakKbForTesting = 0;        // test only: every agent keeps this many more KiB per PTY cycle

  // Hardening (issue 15; docs/reference.md, "Hardening").
  uint32_t heartbeatSecs = 5;           // an agent silent this long sends a heartbeat; silent 3x this: killed (0: off)
  OnLogError onLogError = OnLogError::STOP;  // a failed log write: stop the run (exit 4) or go on, console only (exit 4 too)
  bool appendLog = false;               // --append: share a log file another live run holds (lines kept apart by run_id)
  std::string runId;                    // --run-id; empty: generated (YYYYMMDDTHHMMSSZ-PID)
  uint32_t hangForTestingMs = 0;        // test only: every agent blocks for good this long after start (0: never)
  bool garbageForTesting = false;       // test only: every agent writes a bad frame after agent_started

  // Live metrics (issue 17; docs/reference.md, "Live metrics").
  std::string metricsListen;            // --metrics-listen ADDR:PORT; empty: no endpoint
  std::string metricsTextfile;          // --metrics-textfile FILE; empty: none
  // Shards (issue 17; docs/reference.md, "Shards, live metrics and CI
  // results"): this run is shard shardIndex of shardCount. It runs the global
  // sessions firstSessionId .. firstSessionId + sessions - 1 (the log keeps
  // their global ids; the slots inside this process count from 0) at
  // 1/shardCount of --token-rate; sessionsTotal is --sessions as given.
  std::optional<uint32_t> shardIndex;
  uint32_t shardCount = 1;
  uint32_t firstSessionId = 0;
  uint32_t sessionsTotal = 0;
  std::string hlogPath;  // --hlog: the latency histograms as an HdrHistogram interval log at the end

  bool embeddedDefault() const { return targets.empty(); }
};


// Why there are no Options: a flag or value is wrong (exit_code::USAGE), a
// file named by a flag cannot be used (exit_code::BAD_INPUT), or --help was
// asked for (0, and the message is the help text). The message names the
// flag, what is wrong and what to do; it is printed as it is, to stdout for
// --help and to stderr otherwise.
struct UsageError {
  int exitCode;
  std::string message;
};

// env: reads environment variables (for --passphrase-env); injectable for tests.
using EnvReader = std::optional<std::string> (*)(const std::string& name);
Result<Options, UsageError> parse(int argc, const char* const* argv, EnvReader env = nullptr);
// --targets' entries: "host", "host:port", "[v6]:port" (port 22 if none).
Result<Target, UsageError> parseTarget(std::string text);

// --jobs-file (supervisor/jobs_file.cpp): each non-blank line a JSON object
// {"commands": [TEXT, ...] (required, not empty), "target": "[user@]host[:port]",
//  "id": TEXT or number, "timeout_secs": N (per command)}; unknown fields are
// refused (a typo would otherwise be silently ignored). A bad line refuses the
// file (exit_code::BAD_INPUT, naming the file, the line and the field), or
// with skipBad is left out and listed in `rejected`.
struct JobsFileContents {
  std::vector<JobSpec> jobs;
  std::vector<RejectedJob> rejected;
};
Result<JobsFileContents, UsageError> readJobsFile(const std::string& path, bool skipBad);

// --drop's text ("AT", "AT/EVERY", "AT@0,2-4", "AT/EVERY@0-4") and
// --fault-cmd's ("AT:COMMAND"); the message names the flag and the text.
Result<DropSpec, UsageError> parseDropSpec(const std::string& text);
Result<FaultCommand, UsageError> parseFaultCommand(const std::string& text);

// --fault's SPEC (shared/fault_spec.h), and --fault-file: one SPEC a line,
// '#' comments and blank lines allowed; a bad line names the file and line
// (exit 2), a file that cannot be read is exit 3.
Result<NetFault, UsageError> parseNetFault(const std::string& text);
Result<std::vector<NetFault>, UsageError> readFaultFile(const std::string& path);

// --churn-rate's text ("R" or "A..B/Ts"); the analysis reads run_started's churn_rate with it.
Result<ChurnRate, UsageError> parseChurnRate(const std::string& text);

// --shard's "I/N": I and N, or the message naming what is wrong.
Result<std::pair<uint32_t, uint32_t>, UsageError> parseShard(const std::string& text);
// The global session ids [first, end) of shard index of count, of sessions in all.
std::pair<uint32_t, uint32_t> shardSessions(uint32_t sessions, uint32_t index, uint32_t count);

}  // namespace sshsoak::cli
