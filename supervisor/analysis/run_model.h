// The run model: what a run was, learned from its JSONL lines one at a time.
// JSONL is the contract between the live run and the analysis: the live run
// feeds the model every line as the log gets it (JsonlLog's listener), and
// `sshsoak report` feeds it the lines of a log file; both then read the same
// figures from it (the summary line, the status line, the result table, the
// HTML timeline). docs/reference.md lists the lines and the summary fields.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/analysis/fault_model.h"
#include "supervisor/analysis/histogram_codec.h"
#include "supervisor/analysis/leak_model.h"
#include "supervisor/analysis/verdict.h"
#include "supervisor/analysis/workload_model.h"
#include "supervisor/log_line.h"

namespace sshsoak {

// A session's state as the log tells it; the names are the summary's
// per_session "state" and the HTML timeline's.
enum class SessionState {
  STARTING,    // the slot's agent is spawned, nothing heard yet
  CONNECTING,  // agent_started
  CONNECTED,   // connected, reconnected
  CONNECT_FAILED,
  DISCONNECTED,  // lost; the agent is reconnecting
  AUTH_FAILED,
  MANUAL_RECONNECT_REQUIRED,
  CRASHED,     // agent_crashed; a restart may follow
  RESTARTING,  // the slot's next agent is running, nothing heard from it yet
  GAVE_UP,     // agent_gave_up: the slot is not restarted any more
};
inline constexpr SessionState ALL_SESSION_STATES[] = {
    SessionState::STARTING,     SessionState::CONNECTING,  SessionState::CONNECTED,
    SessionState::CONNECT_FAILED, SessionState::DISCONNECTED, SessionState::AUTH_FAILED,
    SessionState::MANUAL_RECONNECT_REQUIRED, SessionState::CRASHED, SessionState::RESTARTING,
    SessionState::GAVE_UP};
std::string_view stateName(SessionState state);

// A latency's counts at or below fixed bounds (ms), kept as lines come in:
// the live metrics' reconnect histogram (Prometheus' cumulative `le`
// buckets, docs/reference.md "Live metrics"), read by a scrape without
// walking every value. The bounds span a LAN reconnect (tens of ms) to
// --reconnect-timeout-secs' default (15 s) and beyond.
struct BucketedMs {
  static constexpr std::array<int64_t, 13> BOUNDS_MS = {50,   100,  250,   500,   1000,  2500,  5000,
                                                        7500, 10000, 15000, 30000, 60000, 120000};
  std::array<uint64_t, BOUNDS_MS.size()> atOrBelow{};  // cumulative
  uint64_t count = 0;
  int64_t sumMs = 0;
  void add(int64_t ms);
};

struct SessionModel {
  uint32_t id = 0;
  std::string host;
  SessionState state = SessionState::STARTING;
  uint32_t connects = 0;
  uint32_t connectFailures = 0;
  uint32_t disconnects = 0;
  uint32_t injectedDrops = 0;
  uint32_t reconnects = 0;
  uint32_t reconnectFailures = 0;
  uint32_t execPolls = 0;
  uint32_t execPollErrors = 0;
  uint32_t ptyCycles = 0;
  uint32_t ptyErrors = 0;
  uint64_t ptyBytes = 0;
  uint32_t sessionsOpened = 0;  // SSH sessions that became usable
  std::vector<int64_t> reconnectMs;
  bool manual = false;      // sticky: it ever needed a manual reconnect
  bool authFailed = false;  // sticky
  std::string lastError;
  std::optional<std::string> lastExit;  // the slot's last agent end: "exit 0", "signal 9 (SIGKILL)"
  uint32_t crashes = 0;  // every unexpected agent end; each is one abnormal end
  uint32_t unresponsive = 0;    // agent_unresponsive: killed by the watchdog (its crash is in crashes)
  uint32_t protocolErrors = 0;  // agent_protocol_error: killed for a bad frame (its crash is in crashes)
  uint32_t ptyFloods = 0;       // pty_flood: far more PTY output than the workload asks for
  uint32_t restarts = 0;
  bool gaveUp = false;  // crash loop: the slot is not restarted any more
  std::string gaveUpReason;
  // A churn agent or a jobs worker holds no session: it never logs
  // "connected", and only a crash or giving up ends it abnormally.
  bool holdsNoSession = false;

  bool up() const { return state == SessionState::CONNECTED; }
  // The slot's last agent ended other than by a clean shutdown.
  bool crashed() const { return state == SessionState::CRASHED; }
  // Why the session ended abnormally, or empty.
  std::string abnormalReason() const;
};

class RunModel {
 public:
  // hosts: the run's slots when the caller knows them (the live run starts
  // its model after run_started is written). Otherwise the slots are the
  // session ids the lines name.
  // firstId: the id of hosts[0] (a shard's first global session id).
  explicit RunModel(const std::vector<std::string>& hosts = {}, uint32_t firstId = 0);

  void onLine(const Json& line);
  // The live run's model starts after run_started is written: the run hands
  // it that line for what the fault and pacer figures need of it (a log's
  // reader gets it through onLine).
  void noteRunStarted(const Json& runStarted);
  // The live run's model starts after run_started is written: the run tells
  // it what that line says (the workload and its schedule, started at startNs).
  void configureWorkload(const cli::Options& options, int64_t startNs);

  size_t sessionCount() const { return sessions_.size(); }
  const SessionModel& session(uint32_t id) const { return sessions_.at(id); }
  // The session's state before the agent exit about to be logged (the
  // agent_crashed line's last_state). A slot whose last agent crashed and
  // that has an agent to end again was restarted.
  SessionState stateBeforeExit(uint32_t id) const;

  uint32_t interrupts() const { return sumOf(&SessionModel::disconnects); }
  uint32_t reconnects() const { return sumOf(&SessionModel::reconnects); }
  uint32_t crashes() const { return sumOf(&SessionModel::crashes); }
  uint32_t restarts() const { return sumOf(&SessionModel::restarts); }
  std::vector<int64_t> reconnectMs() const;
  // Agent crashes, plus sessions that ended abnormally without a crash at
  // the end (never connected, lost without recovery).
  uint32_t abnormalEnds() const;

  // The live metrics' figures (supervisor/run/metrics.h), kept as lines
  // come so that a scrape reads them in O(sessions) without allocating.
  using StateCounts = std::array<uint32_t, std::size(ALL_SESSION_STATES)>;
  StateCounts sessionsByState() const;  // indexed like ALL_SESSION_STATES
  uint32_t connects() const { return sumOf(&SessionModel::connects); }
  const BucketedMs& reconnectBuckets() const { return reconnectBuckets_; }
  // Failure lines (those with a `category`) by event and category; both
  // come from fixed lists (the agents' events, FailureCategory), so the map
  // stays small whatever a log holds.
  const std::map<std::pair<std::string, std::string>, uint64_t>& failures() const { return failures_; }

  // The live status line's figures.
  struct Progress {
    size_t sessions = 0;
    uint32_t up = 0;
    uint32_t reconnecting = 0;
    uint32_t manual = 0;  // manual reconnect required or auth failed
    uint32_t reconnects = 0;
    std::optional<int64_t> reconnectP95Ms;
  };
  Progress progress() const;

  // The summary line without resources and verdict (the live run adds them).
  Json summary(int64_t wallNs, double durationSecs, uint64_t linesLogged) const;
  // The verdict's inputs that the lines give (the live run adds resources).
  VerdictInputs verdictInputs() const;

  // The result table's figures beyond the summary line's.
  struct Interruptions {
    uint32_t injectedDrops = 0;    // disconnect_injected lines
    uint32_t injectedBatches = 0;  // drops more than 1 s apart: one --drop of several sessions is one
    uint32_t faultCommands = 0;    // fault_injected lines
    std::map<std::string, uint32_t> causes;  // disconnected lines by cause
  };
  const Interruptions& interruptions() const { return interruptions_; }
  // run_started's session count, or the sessions the lines name.
  uint32_t sessionsInRun() const;
  // "A": every session on its own host, "B": one host, "A+B": in between.
  std::string topology() const;
  // From the first line's timestamp to the last's.
  double spanSecs() const;
  // What the workload measured (churn, transfer, echo): the summary's
  // "workload" object, the verdict's workload criteria, the status line's part.
  const WorkloadModel& workload() const { return workload_; }
  std::string workloadStatus() const { return workload_.statusText(); }
  // The run's summary line once it has been seen.
  const std::optional<Json>& summaryLine() const { return summaryLine_; }
  // run_aborted's detail: why a run that logged run_started never ran.
  const std::optional<std::string>& abortedDetail() const { return abortedDetail_; }
  // The leak model (leak_model.h): its fits, the summary's resources.leaks
  // (leaksJson()) and the verdict's leak inputs (in verdictInputs()).
  const LeakModel& leaks() const { return leaks_; }
  Json leaksJson() const { return leaks_.json(); }
  // Network faults and the reconnect pacer (fault_model.h): the summary's
  // `faults` with windows still open closed at endNs, and its `pacer`.
  const FaultModel& faults() const { return faults_; }
  Json faultsJson(int64_t endNs) const;
  const PacerModel& pacer() const { return pacer_; }
  // run_started's time, or the first line's when the log has none.
  int64_t runStartNs() const;

  // Issue 17: the run's latency histograms by name, one per figure the
  // summary gives percentiles of: reconnect_ms (exact: hdr::exactLayout),
  // echo_us, churn_<phase>_us, job_<latency>_us (the workload's, in µs).
  // Only those with values. The summary's `histograms` is their base64 V2
  // encoding; `report --merge` adds them, `--hlog` writes them.
  std::map<std::string, hdr::Histogram> histograms() const;
  static Json histogramsJson(const std::map<std::string, hdr::Histogram>& histograms);

 private:
  SessionModel& sessionFor(uint32_t id);
  uint32_t sumOf(uint32_t SessionModel::*field) const;

  std::map<uint32_t, SessionModel> sessions_;
  std::optional<uint32_t> declaredSessions_;
  Interruptions interruptions_;
  std::optional<int64_t> lastInjectedNs_;
  std::optional<int64_t> firstNs_;
  int64_t lastNs_ = 0;
  std::optional<Json> summaryLine_;
  std::optional<std::string> abortedDetail_;
  WorkloadModel workload_;
  LeakModel leaks_;
  BucketedMs reconnectBuckets_;
  std::map<std::pair<std::string, std::string>, uint64_t> failures_;
  FaultModel faults_;
  PacerModel pacer_;
  std::optional<int64_t> runStartNs_;
  hdr::Histogram reconnectHist_{hdr::exactLayout(), {}, 0};
};

}  // namespace sshsoak
