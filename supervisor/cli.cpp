#include "supervisor/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "shared/churn_schedule.h"
#include "supervisor/exit_codes.h"
#include "supervisor/run/metrics.h"

namespace sshsoak::cli {

namespace {

// Limits of what the flags accept (not defaults: those are in Options).
constexpr uint32_t MAX_SESSIONS = 1000;
constexpr uint32_t MAX_PTY_INTERVAL_SECS = 3600;
constexpr double MAX_TOKEN_RATE_PER_SEC = 1e6;

// What CLI11 fills besides Options: texts still to be parsed, values that
// are optional in Options, and which flags were given at all.
struct Flags {
  EnvReader env = nullptr;
  std::string targets;
  std::string intensity = "medium";
  std::string hostKeyPolicy = "accept-new";
  std::string passphraseFile;
  std::string passphraseEnv;
  uint32_t disconnectAfter = 0;
  uint32_t crashSession = 0;
  std::vector<std::string> dropTexts;
  std::vector<std::string> faultTexts;
  std::vector<std::string> netFaultTexts;
  std::string faultFile;
  std::string workload = "pty";
  std::string churnRate = "100";
  std::string transferDirection = "both";
  std::string jobCommands;
  std::string reuse = "on";
  std::string failureStrategy = "abort-first";
  bool noLivenessCheck = false;
  std::string logDetail = "rollup";
  std::string onLogError = "stop";
  std::string reconnectPacing;  // empty: Options' default
  CLI::Option* churnReportOpt = nullptr;
  CLI::Option* targetsOpt = nullptr;
  CLI::Option* passphraseOpt = nullptr;
  CLI::Option* disconnectOpt = nullptr;
  CLI::Option* sessionsOpt = nullptr;
  CLI::Option* crashSessionOpt = nullptr;
  // Issue 17: shards.
  std::string shard;
  uint32_t shardCount = 0;
  CLI::Option* shardCountOpt = nullptr;
};

using Check = Status<UsageError>;

Failed<UsageError> usage(const std::string& message) {
  return fail(UsageError{exit_code::USAGE, "sshsoak: " + message + "\nRun 'sshsoak --help' for the flags."});
}

Failed<UsageError> badInput(const std::string& message) {
  return fail(UsageError{exit_code::BAD_INPUT, "sshsoak: " + message});
}

std::optional<std::string> realEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

bool number(std::string_view s, uint32_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

// ---- The flags, by group, in the order --help lists them.

void addPredecessorFlags(CLI::App& app, Options& o, Flags& f) {
  // The predecessor's flags, same names and defaults.
  f.targetsOpt = app.add_option("--targets", f.targets, "Comma-separated host:port list, repeated to fill the sessions "
                                                        "(default: a private sshd on 127.0.0.1)");
  app.add_option("--user", o.user, "SSH user name (required with --targets)");
  app.add_option("--key", o.keyPath, "Private key file for public-key auth (required with --targets; use ed25519)");
  f.passphraseOpt = app.add_option("--passphrase", o.passphrase,
                                   "Key passphrase (WARNING: visible in ps and shell history; prefer "
                                   "--passphrase-file or --passphrase-env)");
  app.add_option("--duration-secs", o.durationSecs,
                 "Total run duration (" + std::to_string(o.embeddedDurationSecs) + " with the private sshd)");
  app.add_option("--poll-interval-secs", o.pollIntervalSecs, "Exec poll interval");
  app.add_option("--intensity", f.intensity, "PTY output intensity: low | medium | high");
  f.disconnectOpt = app.add_option("--disconnect-after-secs", f.disconnectAfter,
                                   "Inject a disconnect on all sessions after N seconds");
  f.disconnectOpt->default_str("none");
  app.add_option("--max-reconnect-attempts", o.maxReconnectAttempts,
                 "Max reconnect tries per session per disconnect");
  app.add_option("--reconnect-timeout-secs", o.reconnectTimeoutSecs,
                 "Deadline for one connect (TCP + SSH + auth + first exec)");
  app.add_option("--log-path", o.logPath, "JSONL event log (appended to)");
}

void addConnectionFlags(CLI::App& app, Options& o, Flags& f) {
  f.sessionsOpt = app.add_option("--sessions", o.sessions, "Number of concurrent sessions (agents)");
  app.add_option("--host-key-policy", f.hostKeyPolicy, "Host key checking: strict | accept-new | off");
  app.add_option("--known-hosts", o.knownHostsPath, "known_hosts file (default ~/.ssh/known_hosts)");
  app.add_option("--passphrase-file", f.passphraseFile, "Read the key passphrase from this file (first line)");
  app.add_option("--passphrase-env", f.passphraseEnv,
                 "Read the key passphrase from this environment variable (then removed from the environment)");
  app.add_option("--keepalive-interval-secs", o.keepaliveIntervalSecs,
                 "Send a keepalive every N seconds (OpenSSH ServerAliveInterval)");
  app.add_option("--keepalive-count-max", o.keepaliveCountMax,
                 "Dead after this many intervals with nothing received (ServerAliveCountMax)");
  app.add_option("--pty-interval-secs", o.ptyIntervalSecs,
                 "Pause between PTY bursts (the remote loop's sleep; fractions allowed)");
  app.add_option("--backoff-base-ms", o.backoffBaseMs,
                 "Reconnect backoff: attempt k waits uniform in [0, min(cap, base * 2^k)]");
  app.add_option("--backoff-cap-ms", o.backoffCapMs, "Reconnect backoff ceiling");
  app.add_option("--token-rate", o.tokenRatePerSec,
                 "Connects per second allowed across all sessions (shared token bucket)");
  app.add_option("--token-burst", o.tokenBurst,
                 "Connects allowed at once (keep it below sshd's MaxStartups start, " +
                     std::to_string(SSHD_MAX_STARTUPS_START) + ")");
  app.add_option("--reconnect-pacing", f.reconnectPacing,
                 "fixed: the token bucket at --token-rate; adaptive: its rate starts there, rises while connects "
                 "succeed quickly and falls on signs of an overloaded server, and at most --token-burst handshakes "
                 "are in flight at once (default: " +
                     std::string(reconnectPacingName(DEFAULT_RECONNECT_PACING)) + ")");
}

void addFaultFlags(CLI::App& app, Flags& f) {
  app.add_option("--fault", f.netFaultTexts,
                 "A network fault through the built-in relay (no root): KIND[=PARAMS][@WHEN][@SESSIONS], e.g. "
                 "'latency=200ms~50ms@30s-90s@0-4', 'blackhole@20s+30s', 'reset@40s/60s' (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->default_str("none");
  app.add_option("--fault-file", f.faultFile, "Network faults, one --fault SPEC a line ('#' comments)")
      ->default_str("none");
  app.add_option("--drop", f.dropTexts,
                 "Shut sessions' sockets: AT[/EVERY][@SESSIONS] in seconds, e.g. 30, 30/60, 30@0-4 (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->default_str("none");
  app.add_option("--fault-cmd", f.faultTexts,
                 "Run a shell command at a time: 'AT:COMMAND' (iptables, tc, a service restart; repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->default_str("none");
}

void addRunFlags(CLI::App& app, Options& o, Flags& f) {
  app.add_option("--html", o.htmlPath, "At the end, write a self-contained HTML report of the run to this file "
                                        "(with the private sshd: sshsoak-report.html beside the log)");
  // Issue 17: the verdict for CI and scripts (docs/reference.md, "CI results").
  app.add_option("--junit", o.junitPath, "At each checkpoint and at the end, write the verdict as JUnit XML to this "
                                         "file: one testcase per criterion (for CI)");
  app.add_option("--summary-json", o.summaryJsonPath, "At each checkpoint and at the end, write the summary, verdict "
                                                      "and exit code as one JSON document to this file (for scripts)");
  app.add_option("--shutdown-timeout-secs", o.shutdownTimeoutSecs,
                 "How long agents get to close their sessions at the end before they are killed");
  app.add_option("--agent-path", o.agentPath, "The sshsoak-agent binary (default: beside sshsoak)");
  // Hidden from --help.
  app.add_flag("--crash-agents-for-testing", o.crashAgentsForTesting,
               "Test only: every agent aborts right after it starts")
      ->group("");
  f.crashSessionOpt =
      app.add_option("--crash-session-for-testing", f.crashSession, "Test only: this slot's agent aborts at start")
          ->group("");
  // Issue 14: a log that stays small (docs/reference.md, "Long runs").
  app.add_option("--log-detail", f.logDetail,
                 "rollup: each session's PTY cycles and exec polls as one pty_stats / exec_poll_stats line per "
                 "--rollup-secs; full: also one pty_cycle line per cycle and one exec_poll line per poll");
  app.add_option("--rollup-secs", o.rollupSecs, "The period of the pty_stats and exec_poll_stats lines");
  app.add_flag("--leak-fd-for-testing", o.leakFdForTesting,
               "Test only: every agent keeps one more open fd per PTY cycle, for the leak verdict to catch")
      ->group("");
  app.add_option("--leak-kb-for-testing", o.leakKbForTesting,
                 "Test only: every agent keeps this many more KiB of touched heap per PTY cycle")
      ->group("");
}

void addSupervisionFlags(CLI::App& app, Options& o) {
  app.add_option("--restart-max", o.restartMax,
                 "A slot whose agent crashes this many times within --restart-window-secs is given up");
  app.add_option("--restart-window-secs", o.restartWindowSecs, "The window of --restart-max");
  app.add_option("--sample-interval-secs", o.sampleIntervalSecs,
                 "Sample CPU, RSS, PSS, fds and threads of the supervisor and every agent this often");
  app.add_option("--sample-detail-secs", o.detailSampleSecs,
                 "Read the costly figures (PSS, fd lists, TCP sockets, the local sshd's processes) and log a "
                 "resource_sample line this often");
  app.add_option("--warmup-secs", o.warmupSecs,
                 "Samples before this (at most half the run) are left out of steady-state CPU, fd and RSS-growth figures");
}

void addVerdictFlags(CLI::App& app, Options& o) {
  app.add_option("--max-abnormal-ends", o.maxAbnormalEnds, "Verdict: most abnormal session ends allowed");
  app.add_option("--min-reconnect-rate-pct", o.minReconnectRatePct, "Verdict: least reconnect success rate");
  app.add_option("--max-reconnect-p95-ms", o.maxReconnectP95Ms, "Verdict: highest reconnect p95 (detection to usable)");
  app.add_option("--max-memory-mb", o.maxMemoryMb,
                 "Verdict: peak PSS of supervisor + agents must stay below this (MiB)");
  app.add_option("--max-cpu-pct", o.maxCpuPct,
                 "Verdict: mean CPU of supervisor + agents after warm-up must stay below this (% of one core)");
  app.add_option("--max-memory-slope-mb-per-h", o.maxMemorySlopeMbPerH,
                 "Verdict: every process's RSS growth after warm-up (Theil-Sen slope) must stay below this");
  app.add_option("--max-fd-growth", o.maxFdGrowth,
                 "Verdict: most open fds any process may gain after warm-up or across a reconnect");
  app.add_option("--max-close-wait-sockets", o.maxCloseWaitSockets,
                 "Verdict: most CLOSE_WAIT sockets the harness may hold at the end");
  app.add_option("--leak-min-fit-secs", o.leakMinFitSecs,
                 "The leak criteria need this much sampled time after warm-up; shorter runs judge them n/a");
}

void addWorkloadFlags(CLI::App& app, Options& o, Flags& f) {
  app.add_option("--workload", f.workload,
                 "What each agent does: pty (a long-lived session: PTY stream + exec polls), churn "
                 "(connections back to back), transfer (bulk data, SHA-256 checked)");
  app.add_option("--churn-rate", f.churnRate,
                 "churn: connections per second for the whole run (0: as fast as the server takes them), "
                 "or a ramp A..B/Ts, e.g. 10..500/60s");
  app.add_option("--churn-ramp-steps", o.churnRampSteps, "churn: the ramp rises in this many equal steps");
  app.add_option("--churn-command", o.churnCommand,
                 "churn: the command each connection runs ('' : none, connect + auth + close only)");
  f.churnReportOpt = app.add_option("--churn-report-secs", o.churnReportSecs,
                                    "churn: each agent reports its histograms this often (default: 1 on a ramp, " +
                                        std::to_string(CHURN_STEADY_REPORT_SECS) + " at a steady rate)");
  app.add_flag("--log-each-connection", o.logEachConnection, "churn: also log one line per connection");
  app.add_option("--transfer-direction", f.transferDirection, "transfer: up | down | both (rounds alternate)");
  app.add_option("--transfer-mb", o.transferMb, "transfer: MB (10^6 bytes) per round");
  app.add_option("--transfer-up-cmd", o.transferUpCommand,
                 "transfer: remote command that reads stdin and prints its SHA-256 ({bytes}: the round's size)");
  app.add_option("--transfer-down-cmd", o.transferDownCommand,
                 "transfer: remote command that writes {bytes} bytes on stdout and their SHA-256 on stderr");
  app.add_option("--transfer-window-kb", o.transferWindowKb, "transfer: the channel receive window to ask for");
  app.add_option("--transfer-write-kb", o.transferWriteKb, "transfer: the size of each write handed to libssh2");
  app.add_option("--transfer-stall-secs", o.transferStallSecs,
                 "transfer: no progress this long is reported as a stall (not a failure)");
  app.add_option("--transfer-pause-ms", o.transferPauseMs, "transfer: pause between rounds");
  app.add_option("--jobs-file", o.jobsFile,
                 "jobs: JSONL, one job a line: {\"commands\": [...], \"target\": \"user@host:port\", \"id\": ..., "
                 "\"timeout_secs\": N} (default: generated jobs)");
  app.add_flag("--skip-bad-jobs", o.skipBadJobs,
               "jobs: leave out --jobs-file lines that are not valid jobs (logged) instead of refusing the run");
  app.add_option("--job-rate", o.jobRatePerSec,
                 "jobs: generated jobs per second, whole run (0: as fast as the workers take them)");
  app.add_option("--job-count", o.jobCount, "jobs: generated jobs in all (0: until the run ends)");
  app.add_option("--job-commands", f.jobCommands, "jobs: a generated job's commands, ';'-separated")
      ->default_str("uname -n;date +%s;true");
  app.add_option("--reuse", f.reuse, "jobs: on (cache connections per worker and target) | off (one per job)");
  app.add_option("--max-idle-secs", o.maxIdleSecs, "jobs: close a cached connection unused this long (0: never)");
  app.add_option("--max-connections-per-worker", o.maxConnectionsPerWorker,
                 "jobs: cached connections per worker; the least recently used is closed first");
  app.add_option("--failure-strategy", f.failureStrategy,
                 "jobs: after a failed command: continue | abort-first | abort-after (N = --failure-threshold; "
                 "or abort-after-N)");
  app.add_option("--failure-threshold", o.failureThreshold, "jobs: abort-after's N");
  app.add_option("--command-timeout-secs", o.commandTimeoutSecs, "jobs: deadline of one command");
  app.add_flag("--no-liveness-check", f.noLivenessCheck,
               "jobs: reuse a cached connection without a round trip to the server first (a refused channel open)");
  app.add_option("--job-report-secs", o.jobReportSecs, "jobs: per-worker rollup lines (job_stats) this often");
  app.add_flag("--log-each-job", o.logEachJob, "jobs: a job line for every job (default: failures only)");
  app.add_option("--max-job-queue", o.maxJobQueue, "jobs: generated jobs waiting beyond this are shed (counted)");
  app.add_flag("--compare-reuse", o.compareReuse,
               "jobs: run with reuse off, then on (half the time each, or the jobs file once each) and "
               "print the A/B side by side");
  app.add_option("--server-pid", o.serverPid,
                 "jobs: pid of the target sshd's listener on this machine, to measure its CPU "
                 "(automatic with the private sshd)");
}

void addWorkloadVerdictFlags(CLI::App& app, Options& o) {
  app.add_option("--min-conn-rate", o.minConnRatePerSec,
                 "Verdict (churn): least achieved connections per second over the run");
  app.add_option("--max-conn-failures", o.maxConnFailures, "Verdict (churn): most failed connections allowed");
  app.add_option("--max-connect-p99-ms", o.maxConnectP99Ms,
                 "Verdict (churn): highest p99 connection time, from each connection's intended start");
  app.add_option("--min-throughput-mbps", o.minThroughputMbPerSec,
                 "Verdict (transfer): least aggregate MB/s (10^6 bytes) over all sessions");
  app.add_option("--max-job-failures", o.maxJobFailures, "Verdict (jobs): most failed + aborted jobs allowed");
  app.add_option("--max-job-p95-ms", o.maxJobP95Ms,
                 "Verdict (jobs): highest p95 job latency (queue wait + connect + run)");
}

// Long runs (issue 14): checkpoints and the log's size cap (the test-only
// leaks and --log-detail are with the run flags).
void addLongRunFlags(CLI::App& app, Options& o) {
  app.add_option("--checkpoint-secs", o.checkpointSecs,
                 "Log a checkpoint line (the summary and verdict so far) and rewrite the HTML report this often; "
                 "0: never");
  app.add_option("--log-max-mb", o.logMaxMb,
                 "Rotate the log at this size (MiB): LOG becomes LOG.1 and a new LOG goes on; 0: never");
  app.add_option("--log-keep", o.logKeep, "Rotated log files kept (LOG.1 .. LOG.N); older ones are deleted");
}

// Hardening (issue 15): the agents' heartbeat, and what the log does when it
// cannot be written or is held by another run.
void addHardeningFlags(CLI::App& app, Options& o, Flags& f) {
  app.add_option("--heartbeat-secs", o.heartbeatSecs,
                 "An agent that sent nothing for this long sends a heartbeat; one silent for 3 heartbeats is "
                 "killed and restarted (agent_unresponsive); 0: off");
  app.add_option("--on-log-error", f.onLogError,
                 "A failed write to the log: stop (end the run, exit 4) or console (go on with the console only, "
                 "exit 4 at the end)");
  app.add_flag("--append", o.appendLog,
               "Write to a log file that another live run holds (each line carries its run_id); without it such a "
               "log is refused");
  app.add_option("--run-id", o.runId, "The run's id, stamped on every line (default: YYYYMMDDTHHMMSSZ-PID)");
  app.add_option("--hang-for-testing", o.hangForTestingMs,
                 "Test only: this many ms after it starts, every agent blocks for good without a heartbeat")
      ->group("");
  app.add_flag("--garbage-for-testing", o.garbageForTesting,
               "Test only: every agent writes a frame that is not an event right after it starts")
      ->group("");
}

// Live metrics (issue 17): a Prometheus endpoint and a textfile.
void addMetricsFlags(CLI::App& app, Options& o) {
  app.add_option("--metrics-listen", o.metricsListen,
                 "Serve Prometheus / OpenMetrics text at http://ADDR:PORT/metrics while the run lasts "
                 "(port 0: any free port, logged at start)");
  app.add_option("--metrics-textfile", o.metricsTextfile,
                 "Write the same text to FILE every --sample-interval-secs (FILE.tmp, then renamed: for "
                 "node_exporter's textfile collector)");
}

void defineFlags(CLI::App& app, Options& o, Flags& f) {
  app.option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(36);
  addPredecessorFlags(app, o, f);
  addConnectionFlags(app, o, f);
  addFaultFlags(app, f);
  addRunFlags(app, o, f);
  addSupervisionFlags(app, o);
  addVerdictFlags(app, o);
  addWorkloadFlags(app, o, f);
  addWorkloadVerdictFlags(app, o);
  addLongRunFlags(app, o);
  addHardeningFlags(app, o, f);
  app.add_option("--pid-file", o.pidFile, "Write the supervisor's PID here at start; removed at exit");
  addMetricsFlags(app, o);
  // Issue 17: shards and the .hlog.
  app.add_option("--shard", f.shard,
                 "I/N: this run is shard I (0-based) of N: it runs sessions floor(I*S/N) .. floor((I+1)*S/N)-1 of "
                 "--sessions S (keeping their ids) at 1/N of --token-rate; give all shards one --run-id");
  f.shardCountOpt = app.add_option("--shard-count", f.shardCount,
                                   "N: the same as --shard $JOB_COMPLETION_INDEX/N (a Kubernetes Indexed Job sets "
                                   "JOB_COMPLETION_INDEX)");
  app.add_option("--hlog", o.hlogPath,
                 "At the end, write the latency histograms as an HdrHistogram interval log (.hlog) to this file");
}

// ---- Flag values with a grammar of their own. Errors name the flag.

}  // namespace

// "host", "host:port", "[v6]:port".
Result<Target, UsageError> parseTarget(std::string text) {
  text.erase(0, text.find_first_not_of(" \t"));
  text.erase(text.find_last_not_of(" \t") + 1);
  if (text.empty()) return usage("--targets empty entry");
  auto bad = [&](const std::string& why) { return usage("--targets '" + text + "': " + why); };
  Target t;
  std::string portText;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos) return bad("missing ']'");
    t.host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return bad("expected ':' after ']'");
      portText = text.substr(close + 2);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string::npos && text.find(':') != colon) return bad("write IPv6 addresses as [addr]:port");
    t.host = text.substr(0, colon);
    if (colon != std::string::npos) portText = text.substr(colon + 1);
  }
  if (t.host.empty()) return bad("no host");
  if (!portText.empty() || text.back() == ':') {
    char* end = nullptr;
    errno = 0;
    long port = std::strtol(portText.c_str(), &end, 10);
    if (portText.empty() || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
      return bad("port must be a number from 1 to 65535");
    }
    t.port = static_cast<uint16_t>(port);
  }
  return t;
}

// "AT", "AT/EVERY", "AT@0,2-4", "AT/EVERY@0-4".
Result<DropSpec, UsageError> parseDropSpec(const std::string& text) {
  auto bad = [&](const std::string& why) { return usage("--drop '" + text + "': " + why); };
  DropSpec d;
  std::string_view rest = text;
  std::string_view sessions;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    sessions = rest.substr(at + 1);
    rest = rest.substr(0, at);
    if (sessions.empty()) return bad("no sessions after '@'");
  }
  std::string_view atPart = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    atPart = rest.substr(0, slash);
    if (!number(rest.substr(slash + 1), d.everySecs) || d.everySecs == 0) {
      return bad("the period after '/' must be a whole number of seconds >= 1");
    }
  }
  if (!number(atPart, d.atSecs) || d.atSecs == 0) {
    return bad("expected AT[/EVERY][@SESSIONS] with AT in whole seconds >= 1, e.g. 30, 30/60, 30@0-4");
  }
  // Ids are below MAX_SESSIONS (checkSessionRefs later holds them to
  // --sessions), and each is listed once however often the text names it:
  // the list is bounded whatever the text ("1@0-999,0-999,...", or an id of
  // 2^32-1, whose loop below would never end).
  std::vector<bool> named(MAX_SESSIONS, false);
  while (!sessions.empty()) {
    auto comma = sessions.find(',');
    std::string_view item = sessions.substr(0, comma);
    sessions = comma == std::string_view::npos ? std::string_view{} : sessions.substr(comma + 1);
    uint32_t lo = 0, hi = 0;
    if (auto dash = item.find('-'); dash != std::string_view::npos) {
      if (!number(item.substr(0, dash), lo) || !number(item.substr(dash + 1), hi) || hi < lo) {
        return bad("bad session range '" + std::string(item) + "'");
      }
    } else if (!number(item, lo)) {
      return bad("bad session id '" + std::string(item) + "'");
    } else {
      hi = lo;
    }
    if (hi >= MAX_SESSIONS) {
      return bad("session " + std::to_string(hi) + " does not exist (sessions are numbered from 0, at most " +
                 std::to_string(MAX_SESSIONS) + " of them)");
    }
    for (uint32_t s = lo; s <= hi; ++s) {
      if (!named[s]) d.sessions.push_back(s);
      named[s] = true;
    }
  }
  return d;
}

// "AT:COMMAND".
Result<FaultCommand, UsageError> parseFaultCommand(const std::string& text) {
  auto bad = [&](const std::string& why) { return usage("--fault-cmd '" + text + "': " + why); };
  auto colon = text.find(':');
  FaultCommand f;
  if (colon == std::string::npos || !number(std::string_view(text).substr(0, colon), f.atSecs) || f.atSecs == 0) {
    return bad("expected AT:COMMAND with AT in whole seconds >= 1, e.g. '30:iptables -A ...'");
  }
  f.command = text.substr(colon + 1);
  if (f.command.find_first_not_of(" \t") == std::string::npos) return bad("empty command");
  return f;
}

Result<NetFault, UsageError> parseNetFault(const std::string& text) {
  auto spec = parseFaultSpec(text);
  if (!spec) return usage("--fault " + spec.error());
  return NetFault{std::move(*spec), text};
}

Result<std::vector<NetFault>, UsageError> readFaultFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return badInput("--fault-file " + path + ": cannot read it: " + std::strerror(errno) + " (name a readable file)");
  std::vector<NetFault> faults;
  std::string line;
  uint32_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty()) continue;
    auto spec = parseFaultSpec(line);
    if (!spec) return usage("--fault-file " + path + ":" + std::to_string(number) + ": " + spec.error());
    faults.push_back(NetFault{std::move(*spec), line});
  }
  return faults;
}

namespace {

// ---- Checks, by group, in order: the first failing one is reported.

Check readTargets(Options& o, const Flags& f) {
  if (f.targets.empty() && f.targetsOpt->count() == 0) return Ok{};
  size_t start = 0;
  while (start <= f.targets.size()) {
    size_t comma = f.targets.find(',', start);
    if (comma == std::string::npos) comma = f.targets.size();
    std::string item = f.targets.substr(start, comma - start);
    if (item.find_first_not_of(" \t") != std::string::npos) {
      auto t = parseTarget(item);
      if (!t) return fail(std::move(t.error()));
      o.targets.push_back(*t);
    }
    start = comma + 1;
  }
  if (o.targets.empty()) {
    return usage("--targets is empty: give host:port[,host:port...], or leave the flag out to "
                 "test against a private sshd");
  }
  return Ok{};
}

Check readTimings(Options& o, const Flags& f) {
  if (o.durationSecs == 0) return usage("--duration-secs must be at least 1");
  if (o.pollIntervalSecs == 0) return usage("--poll-interval-secs must be at least 1");
  if (o.reconnectTimeoutSecs == 0) return usage("--reconnect-timeout-secs must be at least 1");
  if (o.keepaliveIntervalSecs == 0) return usage("--keepalive-interval-secs must be at least 1");
  if (o.keepaliveCountMax == 0) return usage("--keepalive-count-max must be at least 1");
  if (f.disconnectOpt->count() > 0) {
    if (f.disconnectAfter == 0) return usage("--disconnect-after-secs must be at least 1");
    o.disconnectAfterSecs = f.disconnectAfter;
  }
  return Ok{};
}

// --disconnect-after-secs (the predecessor's one drop), --drop, --fault-cmd.
Check readFaultPlan(Options& o, const Flags& f) {
  if (o.disconnectAfterSecs) o.drops.push_back(DropSpec{*o.disconnectAfterSecs, 0, {}});
  for (const auto& text : f.dropTexts) {
    auto d = parseDropSpec(text);
    if (!d) return fail(std::move(d.error()));
    o.drops.push_back(std::move(*d));
  }
  o.dropsGiven = !o.drops.empty();
  for (const auto& text : f.faultTexts) {
    auto c = parseFaultCommand(text);
    if (!c) return fail(std::move(c.error()));
    o.faultCommands.push_back(std::move(*c));
  }
  for (const auto& text : f.netFaultTexts) {
    auto n = parseNetFault(text);
    if (!n) return fail(std::move(n.error()));
    o.netFaults.push_back(std::move(*n));
  }
  if (!f.faultFile.empty()) {
    auto fromFile = readFaultFile(f.faultFile);
    if (!fromFile) return fail(std::move(fromFile.error()));
    for (auto& n : *fromFile) o.netFaults.push_back(std::move(n));
  }
  return Ok{};
}

Check readPacing(Options& o, const Flags& f) {
  if (f.reconnectPacing == "fixed") o.reconnectPacing = ReconnectPacing::FIXED;
  else if (f.reconnectPacing == "adaptive") o.reconnectPacing = ReconnectPacing::ADAPTIVE;
  else if (!f.reconnectPacing.empty()) {
    return usage("--reconnect-pacing '" + f.reconnectPacing + "' is not one of fixed, adaptive");
  }
  if (o.backoffBaseMs == 0) return usage("--backoff-base-ms must be at least 1");
  if (o.backoffCapMs < o.backoffBaseMs) return usage("--backoff-cap-ms must be at least --backoff-base-ms");
  if (!(o.tokenRatePerSec > 0.0 && o.tokenRatePerSec <= MAX_TOKEN_RATE_PER_SEC)) {
    return usage("--token-rate must be above 0");
  }
  if (o.tokenBurst == 0) return usage("--token-burst must be at least 1");
  return Ok{};
}

Check readChoices(Options& o, const Flags& f) {
  if (f.intensity == "low") o.intensity = wire::Intensity::LOW;
  else if (f.intensity == "medium") o.intensity = wire::Intensity::MEDIUM;
  else if (f.intensity == "high") o.intensity = wire::Intensity::HIGH;
  else return usage("--intensity '" + f.intensity + "' is not one of low, medium, high");
  if (f.hostKeyPolicy == "strict") o.hostKeyPolicy = wire::HostKeyPolicy::STRICT;
  else if (f.hostKeyPolicy == "accept-new") o.hostKeyPolicy = wire::HostKeyPolicy::ACCEPT_NEW;
  else if (f.hostKeyPolicy == "off") o.hostKeyPolicy = wire::HostKeyPolicy::OFF;
  else return usage("--host-key-policy '" + f.hostKeyPolicy + "' is not one of strict, accept-new, off");
  if (f.logDetail == "rollup") o.logDetail = LogDetail::ROLLUP;
  else if (f.logDetail == "full") o.logDetail = LogDetail::FULL;
  else return usage("--log-detail '" + f.logDetail + "' is not one of rollup, full");
  if (f.onLogError == "stop") o.onLogError = OnLogError::STOP;
  else if (f.onLogError == "console") o.onLogError = OnLogError::CONSOLE;
  else return usage("--on-log-error '" + f.onLogError + "' is not one of stop, console");
  return Ok{};
}

// The PTY pause, supervision, sampling and the verdict's thresholds.
Check readLimits(Options& o, const Flags& /*f*/) {
  if (!(o.ptyIntervalSecs >= 0.0 && o.ptyIntervalSecs <= MAX_PTY_INTERVAL_SECS)) {
    return usage("--pty-interval-secs must be between 0 and " + std::to_string(MAX_PTY_INTERVAL_SECS));
  }
  if (o.sessions == 0) return usage("--sessions must be at least 1");
  if (o.restartMax == 0) return usage("--restart-max must be at least 1");
  if (o.restartWindowSecs == 0) return usage("--restart-window-secs must be at least 1");
  if (o.sampleIntervalSecs == 0) return usage("--sample-interval-secs must be at least 1");
  if (o.minReconnectRatePct < 0 || o.minReconnectRatePct > 100) {
    return usage("--min-reconnect-rate-pct must be from 0 to 100");
  }
  if (o.maxMemoryMb <= 0) return usage("--max-memory-mb must be more than 0");
  if (o.maxCpuPct <= 0) return usage("--max-cpu-pct must be more than 0");
  if (o.rollupSecs == 0) return usage("--rollup-secs must be at least 1");
  if (o.detailSampleSecs == 0) return usage("--sample-detail-secs must be at least 1");
  if (o.detailSampleSecs < o.sampleIntervalSecs) {
    return usage("--sample-detail-secs must be at least --sample-interval-secs (" + std::to_string(o.sampleIntervalSecs) + ")");
  }
  if (o.logKeep == 0) return usage("--log-keep must be at least 1");
  // Each run rotates on its own count of the file's size; one run's rename
  // would look to the other like its log replaced under it.
  if (o.appendLog && o.logMaxMb > 0) {
    return usage("--append and --log-max-mb cannot go together: two runs sharing a log cannot both rotate it; "
                 "drop --log-max-mb, or give each run its own --log-path");
  }
  if (o.heartbeatSecs > 3600) return usage("--heartbeat-secs must be at most 3600 (0: off)");
  if (!(o.maxMemorySlopeMbPerH > 0)) return usage("--max-memory-slope-mb-per-h must be more than 0");
  return Ok{};
}

// Without --sessions, at least one session per target.
Check readSessionCount(Options& o, const Flags& f) {
  if (o.sessions > MAX_SESSIONS) {
    return usage("--sessions " + std::to_string(o.sessions) + " is more than " + std::to_string(MAX_SESSIONS));
  }
  bool given = f.sessionsOpt->count() > 0;
  if (given && o.sessions < o.targets.size()) {
    return usage("--sessions " + std::to_string(o.sessions) + " is fewer than the " +
                 std::to_string(o.targets.size()) + " --targets");
  }
  if (!given && o.targets.size() > o.sessions) o.sessions = static_cast<uint32_t>(o.targets.size());
  return Ok{};
}

// "FLAG PATH: why[ hint]" unless path names a readable regular file.
Check readableFile(std::string_view flag, const std::string& path, std::string_view hint = "") {
  auto bad = [&](const std::string& why) {
    return badInput(std::string(flag) + " " + path + ": " + why + std::string(hint));
  };
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return bad(std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return bad("not a regular file");
  if (::access(path.c_str(), R_OK) != 0) return bad(std::strerror(errno));
  return Ok{};
}

// "FLAG PATH: directory DIR does not exist (create it, or name another
// file)" unless the file's directory (. if none) exists.
Check directoryExists(std::string_view flag, const std::string& path) {
  auto dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = ".";
  if (std::filesystem::is_directory(dir)) return Ok{};
  return badInput(std::string(flag) + " " + path + ": directory " + dir.string() +
                  " does not exist (create it, or name another file)");
}

// The user, the key and the passphrase: which flags go together, then the
// files, which must be there now, not fail ten agents later.
Check readCredentials(Options& o, const Flags& f) {
  if (!o.targets.empty()) {
    if (o.user.empty()) return usage("--user is required with --targets");
    if (o.keyPath.empty()) return usage("--key is required with --targets");
  } else if (!o.user.empty() || !o.keyPath.empty()) {
    return usage("--user and --key go with --targets; without --targets sshsoak uses its own "
                 "private sshd and throwaway key");
  }
  int passSources = (o.passphraseOnCommandLine ? 1 : 0) + (f.passphraseFile.empty() ? 0 : 1) +
                    (f.passphraseEnv.empty() ? 0 : 1);
  if (passSources > 1) {
    return usage("give the passphrase one way only: --passphrase, --passphrase-file or --passphrase-env");
  }
  if (!o.keyPath.empty()) {
    if (auto ok = readableFile("--key", o.keyPath, " (give the path of a readable private key)"); !ok) return ok;
  }
  if (!f.passphraseFile.empty()) {
    if (auto ok = readableFile("--passphrase-file", f.passphraseFile); !ok) return ok;
    std::ifstream in(f.passphraseFile);
    std::getline(in, o.passphrase);
  }
  if (!f.passphraseEnv.empty()) {
    auto v = f.env(f.passphraseEnv);
    if (!v) return badInput("--passphrase-env " + f.passphraseEnv + ": no such environment variable");
    o.passphrase = *v;
    o.passphraseEnvName = f.passphraseEnv;
  }
  return Ok{};
}

Check readKnownHosts(Options& o, const Flags& /*f*/) {
  if (o.hostKeyPolicy == wire::HostKeyPolicy::OFF) return Ok{};
  bool defaultKnownHosts = o.knownHostsPath.empty();
  if (defaultKnownHosts && !o.targets.empty()) {
    const char* home = std::getenv("HOME");
    o.knownHostsPath = std::string(home != nullptr ? home : "") + "/.ssh/known_hosts";
  }
  if (o.knownHostsPath.empty()) return Ok{};
  if (o.hostKeyPolicy == wire::HostKeyPolicy::STRICT) {
    auto ok = readableFile("--known-hosts", o.knownHostsPath,
                           " (strict needs the hosts' keys there: ssh-keyscan HOST >> FILE)");
    if (!ok) return ok;
  }
  // ~/.ssh is made on first use, as OpenSSH does; a directory the user
  // named must exist.
  if (!defaultKnownHosts) return directoryExists("--known-hosts", o.knownHostsPath);
  return Ok{};
}

Check checkOutputs(Options& o, const Flags& /*f*/) {
  if (!o.htmlPath.empty()) {
    auto dir = std::filesystem::path(o.htmlPath).parent_path();
    if (!dir.empty() && !std::filesystem::is_directory(dir)) {
      return badInput("--html " + o.htmlPath + ": directory " + dir.string() + " does not exist");
    }
  }
  for (const auto& [flag, path] : {std::pair{"--junit", &o.junitPath}, std::pair{"--summary-json", &o.summaryJsonPath}}) {
    auto dir = std::filesystem::path(*path).parent_path();
    if (!path->empty() && !dir.empty() && !std::filesystem::is_directory(dir)) {
      return badInput(std::string(flag) + " " + *path + ": directory " + dir.string() + " does not exist");
    }
  }
  // Opened for append, as the run will: the check is the real thing.
  int fd = ::open(o.logPath.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return badInput("--log-path " + o.logPath + ": " + std::strerror(errno) + " (name a file in a writable directory)");
  }
  ::close(fd);
  return Ok{};
}

// --metrics-listen's syntax (binding it is the run's start, exit 3 when
// refused), and --metrics-textfile's directory.
Check checkMetrics(Options& o, const Flags& /*f*/) {
  if (!o.metricsListen.empty()) {
    if (auto address = metrics::parseListenAddress(o.metricsListen); !address) return usage(address.error());
  }
  if (!o.metricsTextfile.empty()) {
    auto dir = std::filesystem::path(o.metricsTextfile).parent_path();
    if (!dir.empty() && !std::filesystem::is_directory(dir)) {
      return badInput("--metrics-textfile " + o.metricsTextfile + ": directory " + dir.string() +
                      " does not exist (create it, or name a file in an existing directory)");
    }
  }
  return Ok{};
}

// --workload jobs' flags; the jobs file itself is read by readJobsFile.
Check readJobFlags(Options& o, const Flags& f) {
  if (f.reuse == "on") o.reuse = true;
  else if (f.reuse == "off") o.reuse = false;
  else return usage("--reuse '" + f.reuse + "' is not one of on, off");
  o.livenessCheck = !f.noLivenessCheck;
  const std::string& s = f.failureStrategy;
  if (s == "continue") o.failureStrategy = wire::FailureStrategy::CONTINUE;
  else if (s == "abort-first") o.failureStrategy = wire::FailureStrategy::ABORT_FIRST;
  else if (s == "abort-after") o.failureStrategy = wire::FailureStrategy::ABORT_AFTER_N;
  else if (s.starts_with("abort-after-") && number(std::string_view(s).substr(12), o.failureThreshold)) {
    o.failureStrategy = wire::FailureStrategy::ABORT_AFTER_N;
  } else {
    return usage("--failure-strategy '" + s + "' is not one of continue, abort-first, abort-after, abort-after-N");
  }
  if (o.failureThreshold == 0) return usage("--failure-threshold must be at least 1");
  if (o.jobRatePerSec < 0 || o.jobRatePerSec > 1e6) return usage("--job-rate must be from 0 to 1000000");
  if (o.commandTimeoutSecs == 0 || o.commandTimeoutSecs > 86400) {
    return usage("--command-timeout-secs must be from 1 to 86400");
  }
  if (o.maxIdleSecs > 86400 * 7) return usage("--max-idle-secs must be at most 604800 (a week; 0: never)");
  if (o.maxConnectionsPerWorker == 0) return usage("--max-connections-per-worker must be at least 1");
  if (o.jobReportSecs == 0) return usage("--job-report-secs must be at least 1");
  if (o.maxJobQueue == 0) return usage("--max-job-queue must be at least 1");
  if (!f.jobCommands.empty()) {
    o.jobCommands.clear();
    size_t from = 0;
    for (;;) {
      size_t semi = f.jobCommands.find(';', from);
      std::string cmd = f.jobCommands.substr(from, semi == std::string::npos ? std::string::npos : semi - from);
      cmd.erase(0, cmd.find_first_not_of(" \t"));
      cmd.erase(cmd.find_last_not_of(" \t") + 1);
      if (!cmd.empty()) o.jobCommands.push_back(cmd);
      if (semi == std::string::npos) break;
      from = semi + 1;
    }
    if (o.jobCommands.empty()) {
      return usage("--job-commands '" + f.jobCommands + "' has no command: give e.g. 'uname -n;uptime'");
    }
  }
  bool jobsOnly = !o.jobsFile.empty() || o.compareReuse;
  if (jobsOnly && o.workload != WorkloadKind::JOBS) {
    return usage(std::string(!o.jobsFile.empty() ? "--jobs-file" : "--compare-reuse") + " needs --workload jobs");
  }
  if (o.workload == WorkloadKind::JOBS && !o.jobsFile.empty()) {
    if (auto ok = readableFile("--jobs-file", o.jobsFile, " (a JSONL file, one job a line)"); !ok) return ok;
    auto read = readJobsFile(o.jobsFile, o.skipBadJobs);
    if (!read) return fail(std::move(read.error()));
    o.jobs = std::move(read->jobs);
    o.rejectedJobs = std::move(read->rejected);
    if (o.jobs.empty()) return badInput("--jobs-file " + o.jobsFile + ": no job in it");
  }
  return Ok{};
}

Check readWorkload(Options& o, const Flags& f) {
  if (f.workload == "pty") o.workload = WorkloadKind::PTY;
  else if (f.workload == "churn") o.workload = WorkloadKind::CHURN;
  else if (f.workload == "transfer") o.workload = WorkloadKind::TRANSFER;
  else if (f.workload == "jobs") o.workload = WorkloadKind::JOBS;
  else return usage("--workload '" + f.workload + "' is not one of pty, churn, transfer, jobs");
  auto rate = parseChurnRate(f.churnRate);
  if (!rate) return fail(std::move(rate.error()));
  o.churnRate = *rate;
  if (o.churnRampSteps == 0) return usage("--churn-ramp-steps must be at least 1");
  if (o.churnReportSecs == 0) return usage("--churn-report-secs must be at least 1");
  if (f.churnReportOpt != nullptr && f.churnReportOpt->count() == 0 && !o.churnRate.ramp()) {
    o.churnReportSecs = CHURN_STEADY_REPORT_SECS;
  }
  if (f.transferDirection == "up") o.transferDown = false;
  else if (f.transferDirection == "down") o.transferUp = false;
  else if (f.transferDirection != "both") {
    return usage("--transfer-direction '" + f.transferDirection + "' is not one of up, down, both");
  }
  if (o.transferMb == 0) return usage("--transfer-mb must be at least 1");
  if (o.transferMb > 1000000) return usage("--transfer-mb must be at most 1000000 (1 TB a round)");
  if (o.transferWindowKb < 32 || o.transferWindowKb > 1024 * 1024) {
    return usage("--transfer-window-kb must be from 32 to 1048576");
  }
  if (o.transferWriteKb == 0 || o.transferWriteKb > 16 * 1024) {
    return usage("--transfer-write-kb must be from 1 to 16384");
  }
  if (o.transferStallSecs == 0) return usage("--transfer-stall-secs must be at least 1");
  if (o.transferUp && o.transferUpCommand.find_first_not_of(" \t") == std::string::npos) {
    return usage("--transfer-up-cmd is empty: give a command that prints the SHA-256 of its stdin");
  }
  if (o.transferDown && o.transferDownCommand.find("{bytes}") == std::string::npos) {
    return usage("--transfer-down-cmd must contain {bytes} (the size it must send)");
  }
  if (auto ok = readJobFlags(o, f); !ok) return ok;
  if (o.minConnRatePerSec < 0) return usage("--min-conn-rate must be 0 or more");
  if (o.minThroughputMbPerSec < 0) return usage("--min-throughput-mbps must be 0 or more");
  return Ok{};
}

// Session numbers named by --drop and --crash-session-for-testing exist.
Check checkSessionRefs(Options& o, const Flags& f) {
  for (const auto& d : o.drops) {
    for (auto id : d.sessions) {
      if (id >= o.sessions) {
        return usage("--drop " + d.text() + ": session " + std::to_string(id) + " does not exist (sessions are 0-" +
                     std::to_string(o.sessions - 1) + ")");
      }
    }
  }
  for (const auto& n : o.netFaults) {
    if (!n.spec.sessions.empty() && n.spec.sessions.back() >= o.sessions) {
      return usage("--fault '" + n.given + "': session " + std::to_string(n.spec.sessions.back()) +
                   " does not exist (sessions are 0-" + std::to_string(o.sessions - 1) + ")");
    }
  }
  if (f.crashSessionOpt->count() > 0) {
    if (f.crashSession >= o.sessions) {
      return usage("--crash-session-for-testing " + std::to_string(f.crashSession) + " is not below --sessions " +
                   std::to_string(o.sessions));
    }
    o.crashSessionForTesting = f.crashSession;
  }
  return Ok{};
}

Check checkPidFile(Options& o, const Flags& /*f*/) {
  if (o.pidFile.empty()) return Ok{};
  return directoryExists("--pid-file", o.pidFile);
}

// The targets, repeated in order to fill the sessions (a shard's sessions
// get the targets their global ids would get in one run).
std::vector<Target> fillSlots(const Options& o) {
  std::vector<Target> slots;
  for (uint32_t i = 0; i < o.sessions && !o.targets.empty(); ++i) {
    slots.push_back(o.targets[(o.firstSessionId + i) % o.targets.size()]);
  }
  return slots;
}

// Issue 17: --shard I/N, or --shard-count N with JOB_COMPLETION_INDEX. Runs
// after checkSessionRefs, so --drop names global session ids; the shard
// keeps the drops of its own sessions, renumbered to its slots.
Check readShard(Options& o, const Flags& f) {
  o.sessionsTotal = o.sessions;
  bool countGiven = f.shardCountOpt->count() > 0;
  if (f.shard.empty() && !countGiven) return Ok{};
  std::optional<std::pair<uint32_t, uint32_t>> fromFlag;
  if (!f.shard.empty()) {
    auto parsed = parseShard(f.shard);
    if (!parsed) return fail(std::move(parsed.error()));
    fromFlag = *parsed;
  }
  std::optional<std::pair<uint32_t, uint32_t>> fromEnv;
  if (countGiven) {
    if (f.shardCount == 0) return usage("--shard-count 0: give the number of shards (1 or more)");
    auto index = f.env("JOB_COMPLETION_INDEX");
    if (!index) {
      if (fromFlag) return usage("--shard-count needs JOB_COMPLETION_INDEX in the environment (a Kubernetes Indexed Job sets it); with --shard I/N leave --shard-count out");
      return usage("--shard-count " + std::to_string(f.shardCount) +
                   ": JOB_COMPLETION_INDEX is not set (a Kubernetes Indexed Job sets it); outside one, give --shard I/N");
    }
    uint32_t i = 0;
    if (!number(*index, i)) {
      return usage("JOB_COMPLETION_INDEX '" + *index + "' is not a whole number (with --shard-count " +
                   std::to_string(f.shardCount) + ")");
    }
    if (i >= f.shardCount) {
      return usage("JOB_COMPLETION_INDEX " + *index + " is not below --shard-count " + std::to_string(f.shardCount) +
                   " (indexes are 0 .. N-1: set the Job's completions to N)");
    }
    fromEnv = std::make_pair(i, f.shardCount);
  }
  if (fromFlag && fromEnv && *fromFlag != *fromEnv) {
    return usage("--shard " + f.shard + " disagrees with JOB_COMPLETION_INDEX " + std::to_string(fromEnv->first) +
                 " and --shard-count " + std::to_string(fromEnv->second) + ": give one of them");
  }
  auto [index, count] = fromFlag ? *fromFlag : *fromEnv;
  // Only the sessions and the reconnect rate are split; churn's and jobs'
  // load (--churn-rate, --job-rate, --job-count, a jobs file) would run in
  // full on every shard and the merge would judge N times the rate asked.
  if (o.workload == WorkloadKind::CHURN || o.workload == WorkloadKind::JOBS) {
    return usage(std::string("--shard with --workload ") + (o.workload == WorkloadKind::CHURN ? "churn" : "jobs") +
                 ": only the pty and transfer workloads are split across shards; run churn and jobs unsharded, "
                 "or give each machine its own share of the rate by hand");
  }
  if (count > o.sessions) {
    return usage("--shard " + std::to_string(index) + "/" + std::to_string(count) + ": more shards than --sessions " +
                 std::to_string(o.sessions) + " (each shard needs a session); give at least " + std::to_string(count) +
                 " sessions or fewer shards");
  }
  auto [first, end] = shardSessions(o.sessions, index, count);
  o.shardIndex = index;
  o.shardCount = count;
  o.firstSessionId = first;
  o.sessions = end - first;
  o.tokenRatePerSec /= count;
  std::vector<DropSpec> drops;
  for (const auto& d : o.drops) {
    if (d.sessions.empty()) {
      drops.push_back(d);
      continue;
    }
    DropSpec mine = d;
    mine.sessions.clear();
    for (auto id : d.sessions) {
      if (id >= first && id < end) mine.sessions.push_back(id - first);
    }
    if (!mine.sessions.empty()) drops.push_back(std::move(mine));
  }
  o.drops = std::move(drops);
  if (o.crashSessionForTesting) {
    uint32_t id = *o.crashSessionForTesting;
    o.crashSessionForTesting = id >= first && id < end ? std::optional<uint32_t>(id - first) : std::nullopt;
  }
  return Ok{};
}

}  // namespace

Result<std::pair<uint32_t, uint32_t>, UsageError> parseShard(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return usage("--shard '" + text + "': " + why + " (expected I/N, 0 <= I < N, e.g. --shard 0/4)");
  };
  auto slash = text.find('/');
  if (slash == std::string::npos) return bad("no '/'");
  uint32_t i = 0, n = 0;
  if (!number(std::string_view(text).substr(0, slash), i) || !number(std::string_view(text).substr(slash + 1), n)) {
    return bad("I and N must be whole numbers");
  }
  if (n == 0) return bad("N must be at least 1");
  if (i >= n) return bad("I must be below N (shards are numbered from 0)");
  return std::make_pair(i, n);
}

std::pair<uint32_t, uint32_t> shardSessions(uint32_t sessions, uint32_t index, uint32_t count) {
  auto at = [&](uint64_t i) { return static_cast<uint32_t>(i * sessions / count); };
  return {at(index), at(uint64_t{index} + 1)};
}

// "R" or "A..B/Ts".
Result<ChurnRate, UsageError> parseChurnRate(const std::string& text) {
  auto bad = [&]() {
    return usage("--churn-rate '" + text + "': expected connections per second (e.g. 100; 0 = as fast as the "
                 "server takes them) or a ramp A..B/Ts (e.g. 10..500/60s)");
  };
  auto rateOf = [](std::string_view s, double& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size() && out >= 0 && out <= 1e6;
  };
  ChurnRate r;
  std::string_view t = text;
  auto dots = t.find("..");
  if (dots == std::string_view::npos) {
    if (!rateOf(t, r.startPerSec)) return bad();
    r.endPerSec = r.startPerSec;
    return r;
  }
  auto slash = t.find('/', dots);
  if (slash == std::string_view::npos) return bad();
  std::string_view secs = t.substr(slash + 1);
  if (secs.ends_with('s')) secs.remove_suffix(1);
  if (!rateOf(t.substr(0, dots), r.startPerSec) || !rateOf(t.substr(dots + 2, slash - dots - 2), r.endPerSec) ||
      !number(secs, r.rampSecs) || r.rampSecs == 0) {
    return bad();
  }
  if (r.startPerSec == 0 || r.endPerSec == 0) {
    return usage("--churn-rate '" + text + "': a ramp's rates must be above 0 (0 means unpaced)");
  }
  return r;
}

std::string_view workloadName(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::PTY: return "pty";
    case WorkloadKind::CHURN: return "churn";
    case WorkloadKind::TRANSFER: return "transfer";
    case WorkloadKind::JOBS: return "jobs";
  }
  return "pty";
}

double ChurnRate::targetAt(int64_t ms, uint32_t steps) const {
  return ChurnRamp{startPerSec, endPerSec, int64_t{rampSecs} * 1000, steps}.targetAt(ms);
}

std::string ChurnRate::text() const {
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  if (!ramp()) return num(startPerSec);
  return num(startPerSec) + ".." + num(endPerSec) + "/" + std::to_string(rampSecs) + "s";
}

std::string Target::text() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<Options, UsageError> parse(int argc, const char* const* argv, EnvReader env) {
  Options o;
  Flags f;
  f.env = env != nullptr ? env : realEnv;
  CLI::App app{
      "sshsoak: soak- and stress-test SSH connection management.\n"
      "Holds N real SSH sessions (one agent process each) under a PTY + exec-poll workload,\n"
      "breaks them on purpose, measures everything and ends with a verdict.\n"
      "With no --targets it starts a private OpenSSH sshd on 127.0.0.1 with throwaway keys.",
      "sshsoak"};
  defineFlags(app, o, f);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return fail(UsageError{0, app.help()});
  } catch (const CLI::ParseError& e) {
    return usage(e.what());
  }
  o.durationGiven = app.count("--duration-secs") > 0;
  o.passphraseOnCommandLine = f.passphraseOpt->count() > 0;
  o.maxCpuPctGiven = app.count("--max-cpu-pct") > 0;
  o.maxMemoryMbGiven = app.count("--max-memory-mb") > 0;
  o.minConnRateGiven = app.count("--min-conn-rate") > 0;

  using Step = Check (*)(Options&, const Flags&);
  for (Step step : {readTargets, readTimings, readFaultPlan, readPacing, readChoices, readLimits, readWorkload,
                    readSessionCount,
                    readCredentials, readKnownHosts, checkOutputs, checkSessionRefs, checkPidFile, readShard,
                    checkMetrics}) {
    if (auto ok = step(o, f); !ok) return fail(std::move(ok.error()));
  }
  o.slots = fillSlots(o);
  return o;
}

}  // namespace sshsoak::cli
