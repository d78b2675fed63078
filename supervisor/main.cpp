// sshsoak: the supervisor. Parses and checks the command line, starts the
// private sshd when no target is given, runs the soak and prints the summary.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <unistd.h>

#include <boost/process/exception.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>

#include "supervisor/run/local_sshd.h"
#include "supervisor/cli.h"
#include "supervisor/exit_codes.h"
#include "supervisor/key_check.h"
#include "supervisor/run/jsonl_log.h"
#include "supervisor/run/metrics.h"
#include "supervisor/run/supervisor.h"
#include "supervisor/run/system_limits.h"
#include "supervisor/analysis/hlog.h"
#include "supervisor/analysis/console.h"
#include "supervisor/analysis/html_report.h"
#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/percentiles_cmd.h"
#include "supervisor/analysis/report.h"
#include "supervisor/analysis/ci_results.h"
#include "supervisor/run/status_line.h"
#include "shared/wire_names.h"
#include "shared/clock.h"

namespace fs = std::filesystem;
using namespace sshsoak;

namespace {

// The embedded default's demo drop: every session once, at 2/5 of the run
// (a little before half-time), in runs long enough for the reconnects to
// show.
constexpr uint32_t DEMO_DROP_MIN_RUN_SECS = 20;
uint32_t demoDropAtSecs(uint32_t durationSecs) { return durationSecs * 2 / 5; }

// The passphrase was visible in ps from the moment we started; at least
// stop showing it now (ps reads /proc/PID/cmdline, i.e. this memory).
void scrubPassphrase(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--passphrase") == 0 && i + 1 < argc) {
      std::memset(argv[i + 1], 'x', std::strlen(argv[i + 1]));
    } else if (std::strncmp(argv[i], "--passphrase=", 13) == 0) {
      std::memset(argv[i] + 13, 'x', std::strlen(argv[i] + 13));
    }
  }
}

// --pid-file: written once the run is set to start, removed on every exit
// path that runs destructors (a SIGKILL leaves it, naming a dead PID).
class PidFile {
 public:
  explicit PidFile(std::string path) : path_(std::move(path)) {
    std::string text = std::to_string(::getpid()) + "\n";
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      int err = errno;
      if (fd >= 0) ::close(fd);
      throw std::system_error(err, std::generic_category(), "--pid-file " + path_);
    }
    ::close(fd);
  }
  ~PidFile() { ::unlink(path_.c_str()); }
  PidFile(const PidFile&) = delete;
  PidFile& operator=(const PidFile&) = delete;

 private:
  std::string path_;
};

// Why the run did not start: the exit code (2 usage, 3 bad input, 71 the
// system refused, 70 a bug) and a message naming the input and the fix.
struct StartError {
  int exitCode;
  std::string message;
};

// Issue 17: where --junit / --summary-json go, once run_started is logged,
// so that a run that aborts after it still gives CI a (failed) result.
struct CiOutputs {
  std::string junitPath, summaryJsonPath, logPath;
  Json started;
};
std::optional<CiOutputs> ciOutputs;

// The one place a run that did not start is reported: on stderr, and, once
// the log is open (log not null), as the run's last line, run_aborted, after
// its run_started, so that the log says why the run it began never ran.
int startFailed(const StartError& e, JsonlLog* log = nullptr, const std::string& runId = "") {
  std::fprintf(stderr, "sshsoak: %s\n", e.message.c_str());
  if (log != nullptr) {
    Json j = lineHead(wallNs(), std::nullopt, "", "run_aborted");
    j["detail"] = e.message;
    j["success"] = false;
    j["run_id"] = runId;
    j["exit_code"] = e.exitCode;
    try {
      log->write(j);
    } catch (const std::exception& writeError) {
      std::fprintf(stderr, "sshsoak: --log-path: cannot write run_aborted: %s\n", writeError.what());
    }
    if (ciOutputs) {
      ci::RunResult result{.runId = runId, .source = ciOutputs->logPath, .summary = j,
                           .settings = ciOutputs->started, .exitCode = e.exitCode};
      for (auto error : {ci::writeJunit(ciOutputs->junitPath, {result}),
                         ci::writeSummaryJson(ciOutputs->summaryJsonPath, result)}) {
        if (error) std::fprintf(stderr, "sshsoak: %s\n", error->c_str());
      }
    }
  }
  return e.exitCode;
}

std::string findAgent(const std::string& given) {
  if (!given.empty()) return given;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  for (const fs::path& candidate : {self.parent_path() / "sshsoak-agent",
                                    self.parent_path().parent_path() / "session_agent" / "sshsoak-agent"}) {
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return (self.parent_path() / "sshsoak-agent").string();
}

std::string runId() {
  char buf[64];
  time_t now = ::time(nullptr);
  tm utc{};
  ::gmtime_r(&now, &utc);
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &utc);
  return std::string(buf) + "-" + std::to_string(::getpid());
}

Json runStartedLine(const cli::Options& o, const std::string& id, bool embedded) {
  Json j = lineHead(wallNs(), std::nullopt, "", "run_started");
  j["run_id"] = id;
  j["version"] = "0.1.0";
  Json targets = Json::array();
  for (const auto& t : o.targets) targets.push_back(t.text());
  j["targets"] = targets;
  j["embedded_sshd"] = embedded;
  j["sessions"] = o.slots.size();
  j["duration_secs"] = o.durationSecs;
  j["intensity"] = std::string(intensityName(o.intensity));
  j["poll_interval_secs"] = o.pollIntervalSecs;
  j["keepalive"] = std::to_string(o.keepaliveIntervalSecs) + " s x " + std::to_string(o.keepaliveCountMax);
  j["max_reconnect_attempts"] = o.maxReconnectAttempts;
  j["reconnect_timeout_secs"] = o.reconnectTimeoutSecs;
  j["host_key_policy"] = std::string(hostKeyPolicyName(o.hostKeyPolicy));
  j["workload"] = std::string(cli::workloadName(o.workload));
  // Readers count PTY cycles and exec polls from the rollups when these are
  // here (a full log has both kinds of line), from per-cycle lines if not.
  j["log_detail"] = o.logDetail == cli::LogDetail::FULL ? "full" : "rollup";
  j["rollup_secs"] = o.rollupSecs;
  switch (o.workload) {
    case cli::WorkloadKind::CHURN:
      j["churn_rate"] = o.churnRate.text();
      j["churn_ramp_steps"] = o.churnRampSteps;
      j["churn_command"] = o.churnCommand;
      // A ramp's breaking point is judged against these (workload_model.cpp).
      j["max_conn_failures"] = o.maxConnFailures;
      j["max_connect_p99_ms"] = o.maxConnectP99Ms;
      break;
    case cli::WorkloadKind::TRANSFER:
      j["transfer_direction"] = o.transferUp && o.transferDown ? "both" : o.transferUp ? "up" : "down";
      j["transfer_mb"] = o.transferMb;
      break;
    case cli::WorkloadKind::JOBS:
      j["jobs_source"] = o.jobsFile.empty() ? "generated" : "file";
      if (!o.jobsFile.empty()) {
        j["jobs_file"] = o.jobsFile;
        j["jobs_in_file"] = o.jobs.size();
      } else {
        j["job_rate"] = o.jobRatePerSec;
        j["job_count"] = o.jobCount;
        j["job_commands"] = o.jobCommands;
      }
      j["reuse"] = o.compareReuse ? "compare" : o.reuse ? "on" : "off";
      j["max_idle_secs"] = o.maxIdleSecs;
      j["max_connections_per_worker"] = o.maxConnectionsPerWorker;
      j["failure_strategy"] = std::string(failureStrategyName(o.failureStrategy));
      j["failure_threshold"] = o.failureThreshold;
      j["command_timeout_secs"] = o.commandTimeoutSecs;
      j["liveness_check"] = o.livenessCheck;
      j["job_report_secs"] = o.jobReportSecs;
      break;
    case cli::WorkloadKind::PTY: break;
  }
  Json drops = Json::array();
  for (const auto& d : o.drops) drops.push_back(d.text());
  j["drops"] = drops;
  Json faults = Json::array();
  for (const auto& f : o.faultCommands) faults.push_back(std::to_string(f.atSecs) + ": " + f.command);
  j["fault_commands"] = faults;
  // --fault / --fault-file: the SPECs as given, in fault_id order.
  Json netFaults = Json::array();
  for (const auto& f : o.netFaults) netFaults.push_back(f.given);
  j["net_faults"] = netFaults;
  // issue 16 (issue16-pacer): how reconnects are paced.
  j["reconnect_pacing"] = std::string(reconnectPacingName(o.reconnectPacing));
  // The reconnect bucket's start: the summary's pacer.initial_rate.
  j["token_rate"] = o.tokenRatePerSec;
  j["token_burst"] = o.tokenBurst;
  // Never the passphrase; the key only by path.
  j["user"] = o.user;
  j["key"] = o.keyPath;
  j["detail"] = std::to_string(o.slots.size()) + " sessions for " + std::to_string(o.durationSecs) + " s";
  // The leak model's warm-up (as the run caps it: half the run) and minimum fit span.
  j["warmup_secs"] = std::min<double>(o.warmupSecs, o.durationSecs / 2.0);
  j["leak_min_fit_secs"] = o.leakMinFitSecs;
  // Issue 17: a shard says which part of the run it is.
  if (o.shardIndex) {
    j["sessions_total"] = o.sessionsTotal;
    j["first_session_id"] = o.firstSessionId;
    j["token_rate_per_sec"] = o.tokenRatePerSec;
  }
  return j;
}

int runMain(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  // A log past the file-size limit (ulimit -f) is a failed write (EFBIG),
  // named and handled like a full disk, not a silent death by SIGXFSZ.
  ::signal(SIGXFSZ, SIG_IGN);
  if (argc >= 2 && std::strcmp(argv[1], "report") == 0) return report::main(argc - 1, argv + 1);
  if (argc >= 2 && std::strcmp(argv[1], "percentiles") == 0) return percentiles_cmd::main(argc - 1, argv + 1);
  auto console = std::make_shared<spdlog::logger>("sshsoak", status_line::makeConsoleSink());
  console->set_pattern("%H:%M:%S.%e %^%-5l%$ %v");
  spdlog::set_default_logger(console);
  if (const char* level = std::getenv("SSHSOAK_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(level));

  auto parsed = cli::parse(argc, argv);
  if (!parsed) {
    const cli::UsageError& error = parsed.error();
    std::fprintf(error.exitCode == 0 ? stdout : stderr, "%s\n", error.message.c_str());
    return error.exitCode;
  }
  cli::Options options = std::move(parsed).value();
  scrubPassphrase(argc, argv);
  if (!options.passphraseEnvName.empty()) ::unsetenv(options.passphraseEnvName.c_str());
  if (options.passphraseOnCommandLine) {
    spdlog::warn("--passphrase is visible to every user in ps and in your shell history; "
                 "prefer --passphrase-file or --passphrase-env");
  }
  if (options.hostKeyPolicy == wire::HostKeyPolicy::OFF) {
    spdlog::warn("--host-key-policy off: host keys are NOT verified. Anyone on the network path can "
                 "impersonate the servers and read or alter these sessions. Use only on a trusted network.");
  }

  if (!options.knownHostsPath.empty()) {
    fs::path dir = fs::path(options.knownHostsPath).parent_path();
    std::error_code ec;
    if (!dir.empty() && !fs::exists(dir, ec)) {
      fs::create_directories(dir, ec);
      fs::permissions(dir, fs::perms::owner_all, ec);
    }
  }

  // A SIGKILLed run leaves its private sshd's dir (its keys): removed at the
  // next start, as token_bucket.cpp does with stale shared memory.
  for (const auto& stale : LocalSshd::removeStale()) spdlog::info("removed a dead run's private sshd dir {}", stale);

  // Before the sshd and the agents start: they inherit the raised limit.
  LimitCheck limits = checkSystemLimits(
      options.sessions, options.embeddedDefault(),
      options.workload == cli::WorkloadKind::JOBS ? options.maxConnectionsPerWorker : 1);
  if (!limits.info.empty()) spdlog::info("{}", limits.info);
  if (limits.error) return startFailed({exit_code::SYSTEM, *limits.error});
  if (!limits.warning.empty()) spdlog::warn("{}", limits.warning);

  std::string agentPath = findAgent(options.agentPath);
  if (::access(agentPath.c_str(), X_OK) != 0) {
    return startFailed({exit_code::SYSTEM, "cannot execute the agent " + agentPath + ": " + std::strerror(errno) +
                                               " (build it, or name it with --agent-path)"});
  }

  std::unique_ptr<LocalSshd> sshd;
  if (options.embeddedDefault()) {
    try {
      LocalSshdOptions sshdOptions;
      if (options.workload == cli::WorkloadKind::CHURN) sshdOptions.extraConfig = CHURN_SSHD_CONFIG;
      sshd = std::make_unique<LocalSshd>(sshdOptions);
    } catch (const std::exception& e) {
      return startFailed({exit_code::SYSTEM, std::string("cannot start the private sshd: ") + e.what()});
    }
    spdlog::info("no --targets: started a private OpenSSH sshd on {} (pid {}) with THROWAWAY host and "
                 "client keys in {}; it and its keys are removed at exit",
                 sshd->target(), sshd->pid(), sshd->dir());
    options.targets = {cli::Target{sshd->address(), sshd->port()}};
    options.slots.assign(options.sessions, options.targets[0]);
    options.user = sshd->user();
    options.keyPath = sshd->clientKeyPath();
    options.knownHostsPath = sshd->knownHostsPath();
    // jobs: the sshd's CPU per phase (job_phase) is the private sshd's.
    if (options.serverPid == 0) options.serverPid = sshd->pid();
    // A short run, enough to see every part work.
    if (!options.durationGiven) options.durationSecs = options.embeddedDurationSecs;
    // The first experience shows the reconnect path too, unless the user
    // planned faults. Churn holds no session to reconnect: a drop there is
    // only a failed connection, which its verdict counts against the run;
    // a drop under a job is likewise a failed job (job_failures).
    if (!options.dropsGiven && options.faultCommands.empty() && options.netFaults.empty() &&
        options.durationSecs >= DEMO_DROP_MIN_RUN_SECS &&
        options.workload != cli::WorkloadKind::CHURN && options.workload != cli::WorkloadKind::JOBS) {
      options.drops.push_back(DropSpec{demoDropAtSecs(options.durationSecs), 0, {}});
      spdlog::info("the demo drops every session at {} s to show the reconnect path", options.drops[0].atSecs);
    }
    if (options.htmlPath.empty()) {
      options.htmlPath = (fs::path(options.logPath).parent_path() / "sshsoak-report.html").string();
    }
  }

  // Before any agent is spawned: a key the agents cannot use would fail
  // every session of the run (docs/reference.md, "Checked at start").
  if (auto key = checkClientKey(sshd ? "the private sshd's throwaway key" : "--key", options.keyPath,
                                options.passphrase);
      !key) {
    // The embedded default's key was made here by ssh-keygen: not the user's input.
    return startFailed({sshd ? exit_code::SYSTEM : exit_code::BAD_INPUT, key.error().message});
  } else if (!key->warning.empty()) {
    spdlog::warn("{}", key->warning);
  }

  // --metrics-listen is bound before anything is written or started: a port
  // in use is a start-up error (exit 3) naming the address and the fix.
  std::optional<metrics::Listener> metricsListener;
  if (!options.metricsListen.empty()) {
    auto bound = metrics::bindListener(metrics::parseListenAddress(options.metricsListen).value());
    if (!bound) return startFailed({exit_code::BAD_INPUT, bound.error()});
    metricsListener = std::move(bound).value();
    spdlog::info("metrics at http://{}/metrics", metricsListener->bound);
  }

  // One run per log file unless --append (docs/reference.md, "Hardening").
  LogLock lock(options.logPath, options.appendLog ? LogLock::Mode::SHARED : LogLock::Mode::EXCLUSIVE);
  if (!lock.held() && lock.error().empty() && !options.appendLog) {
    std::string holder = lock.holderPid() > 0 ? "pid " + std::to_string(lock.holderPid()) : "a process (pid not yet known)";
    return startFailed({exit_code::BAD_INPUT, "--log-path " + options.logPath + " is in use by another run (" + holder +
                                                  " holds " + LogLock::lockPath(options.logPath) +
                                                  "); name another --log-path, or add --append to write to it too "
                                                  "(lines are kept apart by run_id)"});
  }
  if (!lock.error().empty()) spdlog::warn("log lock: {}; the log is not protected against a second run", lock.error());

  std::unique_ptr<JsonlLog> log;
  try {
    log = std::make_unique<JsonlLog>(
        options.logPath, LogRotation{.maxBytes = uint64_t{options.logMaxMb} << 20, .keep = options.logKeep});
  } catch (const std::exception& e) {
    return startFailed({exit_code::BAD_INPUT, "--log-path " + options.logPath + ": " + e.what()});
  }
  spdlog::info("{} sessions against {}; log {}", options.slots.size(),
               [&] {
                 std::string t;
                 for (const auto& target : options.targets) t += (t.empty() ? "" : ",") + target.text();
                 return t;
               }(),
               options.logPath);

  std::string id = options.runId.empty() ? runId() : options.runId;
  log->setRunId(id);
  if (options.shardIndex) log->setShard(*options.shardIndex, options.shardCount, options.firstSessionId);
  Json started = runStartedLine(options, id, sshd != nullptr);
  // Live metrics: where they are (port 0 picked one), on the run's first line.
  if (metricsListener) started["metrics_listen"] = metricsListener->bound;
  if (!options.metricsTextfile.empty()) started["metrics_textfile"] = options.metricsTextfile;
  log->write(started);
  if (const auto& failure = log->failure()) {
    std::fprintf(stderr, "sshsoak: --log-path: the first line could not be written: %s; nothing started (exit 4)\n",
                 failure->text().c_str());
    return exit_code::LOG_FAILED;
  }
  if (!options.junitPath.empty() || !options.summaryJsonPath.empty()) {
    ciOutputs = CiOutputs{options.junitPath, options.summaryJsonPath, options.logPath, started};
  }

  std::unique_ptr<PidFile> pidFile;
  if (!options.pidFile.empty()) {
    try {
      pidFile = std::make_unique<PidFile>(options.pidFile);
    } catch (const std::system_error& e) {
      return startFailed({exit_code::BAD_INPUT, std::string(e.what()) + " (name a writable file)"}, log.get(), id);
    }
  }

  Json summary;
  std::shared_ptr<RunAccumulator> thisRun;
  bool htmlFailed = false;
  std::string relayFailure;  // --fault: the relay died during the run
  try {
    Supervisor supervisor(options, agentPath, *log);
    thisRun = supervisor.accumulator();
    // As written: a shard's line carries shard and shards.
    thisRun->noteRunStarted(log->runStarted() ? *log->runStarted() : started);
    if (metricsListener || !options.metricsTextfile.empty()) {
      // The labels as the log has them: run_id, and shard on a shard's lines.
      const Json& written = log->runStarted() ? *log->runStarted() : started;
      metrics::RunLabels labels{id, std::nullopt};
      if (written.contains("shard") && written["shard"].is_number_unsigned()) labels.shard = written["shard"].get<uint32_t>();
      supervisor.enableMetrics(std::move(labels), metricsListener ? std::move(metricsListener->fd) : UniqueFd());
    }
    summary = supervisor.run();
    htmlFailed = supervisor.htmlFailed();
    relayFailure = supervisor.relayFailure();
  } catch (const boost::process::process_error& e) {
    return startFailed({exit_code::SYSTEM, "cannot start an agent (" + agentPath + "): " + e.what()}, log.get(), id);
  } catch (const std::system_error& e) {
    // Thrown out of the run: its log still gets its last line (main's own
    // catch cannot reach the log).
    return startFailed({exit_code::SYSTEM, std::string("system error: ") + e.what()}, log.get(), id);
  } catch (const std::exception& e) {
    return startFailed({exit_code::INTERNAL, std::string("internal error: ") + e.what()}, log.get(), id);
  }
  status_line::clear();
  printSummary(stdout, summary, options.logPath);
  // The test plan's result table for this run, ready to paste
  // (docs/reference.md, "The result table"): from the run's own accumulator,
  // fed every line as it was logged (the log may hold earlier runs too; it is
  // not read back).
  report::Input input;
  input.runs.push_back(report::runOf(options.logPath, thisRun));
  std::printf("\n%s", report::markdown(input).c_str());
  if (!options.htmlPath.empty()) {
    std::string error;
    if (report::writeFileAtomically(options.htmlPath, report::renderHtml(input.runs), &error)) {
      std::printf("\nHTML report: %s\n", options.htmlPath.c_str());
    } else {
      htmlFailed = true;
      spdlog::error("--html: cannot write the report: {}", error);
    }
  }
  // Issue 17: --hlog, the run's histograms as an HdrHistogram interval log.
  bool hlogFailed = false;
  if (!options.hlogPath.empty()) {
    std::string error;
    std::string text = hlog::render(thisRun->model().histograms(),
                                    thisRun->firstNs() ? static_cast<double>(*thisRun->firstNs()) / 1e9 : 0,
                                    thisRun->spanSecs(), "sshsoak run " + id);
    if (report::writeFileAtomically(options.hlogPath, text, &error)) {
      std::printf("\nHdrHistogram log: %s\n", options.hlogPath.c_str());
    } else {
      hlogFailed = true;
      spdlog::error("--hlog: cannot write: {}", error);
    }
  }
  std::printf("Table of several runs: sshsoak report %s [MORE.jsonl ...]\n", options.logPath.c_str());
  std::fflush(stdout);
  // The exit code tells the worst that happened: the log failed (4), a
  // report file could not be written (3), a criterion failed (1).
  int code = log->failure()          ? exit_code::LOG_FAILED
             : !relayFailure.empty()   ? exit_code::SYSTEM
             : htmlFailed || hlogFailed ? exit_code::BAD_INPUT
                            : (summary["success"].get<bool>() ? exit_code::PASSED : exit_code::CRITERIA_FAILED);
  // Issue 17: the verdict for CI and scripts, with the exit code it gives
  // (a file that cannot be written makes it 3, unless the log's 4 wins).
  bool ciFailed = false;
  if (!options.junitPath.empty() || !options.summaryJsonPath.empty()) {
    ci::RunResult result{.runId = id, .source = options.logPath, .summary = summary,
                         .settings = log->runStarted() ? *log->runStarted() : started,
                         .exitCode = code};
    for (auto error : {ci::writeJunit(options.junitPath, {result}), ci::writeSummaryJson(options.summaryJsonPath, result)}) {
      if (!error) continue;
      ciFailed = true;
      spdlog::error("{}", *error);
    }
  }
  if (const auto& failure = log->failure()) {
    std::fprintf(stderr, "sshsoak: the log failed during the run: %s; the summary and verdict above are complete, "
                 "the log holds the lines written before the failure (exit 4)\n", failure->text().c_str());
    return exit_code::LOG_FAILED;
  }
  if (!relayFailure.empty()) {
    std::fprintf(stderr, "sshsoak: %s (exit 71)\n", relayFailure.c_str());
    return exit_code::SYSTEM;
  }
  if (htmlFailed) {
    std::fprintf(stderr, "sshsoak: --html %s could not be written (see above; exit 3)\n", options.htmlPath.c_str());
    return exit_code::BAD_INPUT;
  }
  if (ciFailed) {
    std::fprintf(stderr, "sshsoak: --junit / --summary-json could not be written (see above; exit 3)\n");
    return exit_code::BAD_INPUT;
  }
  if (hlogFailed) {
    std::fprintf(stderr, "sshsoak: --hlog %s could not be written (see above; exit 3)\n", options.hlogPath.c_str());
    return exit_code::BAD_INPUT;
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return runMain(argc, argv);
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "sshsoak: system error: %s\n", e.what());
    return exit_code::SYSTEM;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sshsoak: internal error: %s\n", e.what());
    return exit_code::INTERNAL;
  }
}
