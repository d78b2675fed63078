#include "supervisor/analysis/run_model.h"

#include <capnp/schema.h>

#include <cmath>
#include <cstdio>
#include <set>
#include <unordered_map>

#include "shared/clock.h"
#include "shared/wire_names.h"
#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/stats.h"

namespace sshsoak {

namespace {

using W = wire::Event::Which;

// The agents' events by their log names (wire_names.h, the one list).
std::optional<W> agentEventOf(const std::string& name) {
  static const std::unordered_map<std::string, W> byName = [] {
    std::unordered_map<std::string, W> m;
    for (auto f : capnp::Schema::from<wire::Event>().getUnionFields()) {
      auto which = static_cast<W>(f.getProto().getDiscriminantValue());
      m.emplace(std::string(eventName(which)), which);
    }
    return m;
  }();
  auto it = byName.find(name);
  return it == byName.end() ? std::nullopt : std::optional<W>(it->second);
}


// A non-negative whole number field; lines written live hold it unsigned,
// lines built elsewhere may hold it signed.
std::optional<uint64_t> countOf(const Json& line, const char* key) {
  const Json& v = field(line, key);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return static_cast<uint64_t>(v.get<int64_t>());
  return std::nullopt;
}

// Churn agents and jobs workers hold no long-lived session: they never log
// "connected", and only a crash or giving up ends one abnormally.
bool holdsNoSession(cli::WorkloadKind kind) {
  return kind == cli::WorkloadKind::CHURN || kind == cli::WorkloadKind::JOBS;
}

// A job line the supervisor wrote for a job whose worker could not answer.
bool madeBySupervisor(const Json& jobLine) {
  std::string kind = textField(jobLine, "failure_kind");
  return kind == "worker_died" || kind == "run_ended";
}

// A failure line's category, if it is one of FailureCategory's names.
bool knownCategory(const std::string& name) {
  static const std::set<std::string> names = [] {
    std::set<std::string> all;
    for (auto e : capnp::Schema::from<wire::FailureCategory>().getEnumerants()) {
      all.emplace(categoryName(static_cast<wire::FailureCategory>(e.getOrdinal())));
    }
    return all;
  }();
  return names.count(name) > 0;
}

Json orNull(std::optional<int64_t> v) { return v ? Json(*v) : Json(nullptr); }
Json orNull(std::optional<double> v) { return v ? Json(*v) : Json(nullptr); }

}  // namespace

// No state reads like an event name (docs/reference.md, "Hardening"): a
// grep for "connected" finds connected events, not sessions that are up.
std::string_view stateName(SessionState state) {
  switch (state) {
    case SessionState::STARTING: return "starting";
    case SessionState::CONNECTING: return "connecting";
    case SessionState::CONNECTED: return "up";
    case SessionState::CONNECT_FAILED: return "connect_failing";
    case SessionState::DISCONNECTED: return "down";
    case SessionState::AUTH_FAILED: return "auth_refused";
    case SessionState::MANUAL_RECONNECT_REQUIRED: return "needs_manual_reconnect";
    case SessionState::CRASHED: return "crashed";
    case SessionState::RESTARTING: return "restarting";
    case SessionState::GAVE_UP: return "gave_up";
  }
  return "starting";
}

std::string SessionModel::abnormalReason() const {
  if (gaveUp) return "given up after " + std::to_string(crashes) + " agent crashes (" + gaveUpReason + ")";
  if (crashed() && lastExit) return "agent ended with " + *lastExit;
  if (crashed()) return "agent ended unexpectedly";
  if (holdsNoSession) return crashes > 0 ? std::to_string(crashes) + " agent crash(es), restarted and recovered" : "";
  if (connects == 0) return "never connected" + (lastError.empty() ? "" : " (" + lastError + ")");
  if (!up()) return "session lost without recovery" + (lastError.empty() ? "" : " (" + lastError + ")");
  if (crashes > 0) return std::to_string(crashes) + " agent crash(es), restarted and recovered";
  return "";
}

void BucketedMs::add(int64_t ms) {
  ++count;
  sumMs += ms;
  for (size_t i = BOUNDS_MS.size(); i-- > 0 && ms <= BOUNDS_MS[i];) ++atOrBelow[i];
}

RunModel::RunModel(const std::vector<std::string>& hosts, uint32_t firstId) {
  for (size_t i = 0; i < hosts.size(); ++i) sessionFor(firstId + static_cast<uint32_t>(i)).host = hosts[i];
}

SessionModel& RunModel::sessionFor(uint32_t id) {
  auto [it, added] = sessions_.try_emplace(id);
  if (added) {
    it->second.id = id;
    it->second.holdsNoSession = holdsNoSession(workload_.kind());
  }
  return it->second;
}

void RunModel::onLine(const Json& line) {
  std::string event = textField(line, "event");
  int64_t ns = parseIsoTimestamp(textField(line, "ts"));
  if (!firstNs_) firstNs_ = ns;
  lastNs_ = ns;

  if (event == "run_started" && countField(line, "sessions", UINT32_MAX)) {
    declaredSessions_ = static_cast<uint32_t>(*countField(line, "sessions", UINT32_MAX));
  } else if (event == "summary") {
    summaryLine_ = line;
  } else if (event == "run_aborted") {
    abortedDetail_ = textField(line, "detail");
  } else if (event == "fault_injected") {
    ++interruptions_.faultCommands;
  } else if (event == "disconnect_injected") {
    ++interruptions_.injectedDrops;
    if (!lastInjectedNs_ || ns - *lastInjectedNs_ > 1'000'000'000) ++interruptions_.injectedBatches;
    lastInjectedNs_ = ns;
  } else if (event == "disconnected") {
    ++interruptions_.causes[textField(line, "cause")];
  }

  leaks_.onLine(line, event, ns);

  auto id = countOf(line, "session_id");
  bool hasId = id && *id <= UINT32_MAX;
  if (event == "run_started") runStartNs_ = ns;
  faults_.onLine(line, event, ns, hasId ? std::optional<uint32_t>(static_cast<uint32_t>(*id)) : std::nullopt);
  pacer_.onLine(line, event);
  workload_.onLine(line, event, ns, hasId ? std::optional<uint32_t>(static_cast<uint32_t>(*id)) : std::nullopt);
  if (event == "run_started" && holdsNoSession(workload_.kind())) {
    for (auto& [sid, sm] : sessions_) sm.holdsNoSession = true;
  }
  if (!hasId) return;
  SessionModel& s = sessionFor(static_cast<uint32_t>(*id));
  // A job line's host is its job's target, not the worker's slot.
  if (field(line, "host").is_string() && event != "job") s.host = field(line, "host").get<std::string>();

  // The supervisor's job_stats and job_retried, and the job line it makes
  // for a dead worker's job (worker_died, run_ended), name a worker but are
  // not its agent's lines: they never stand for a restart. A worker with
  // results is working, which is what "up" is for a worker (it holds no session).
  if (event == "job_stats" || event == "job_retried" || (event == "job" && madeBySupervisor(line))) {
    s.holdsNoSession = true;
    if (event == "job_stats" && (s.state == SessionState::STARTING || s.state == SessionState::CONNECTING)) {
      s.state = SessionState::CONNECTED;
    }
    return;
  }

  // The supervisor logs no line of its own when it restarts a slot: the
  // next line of a crashed slot (other than giving it up) is from the agent
  // it started again.
  if (s.state == SessionState::CRASHED && event != "agent_gave_up") {
    ++s.restarts;
    s.state = SessionState::RESTARTING;
  }

  if (event == "agent_exited" || event == "agent_crashed") {
    if (field(line, "detail").is_string()) s.lastExit = field(line, "detail").get<std::string>();
    if (event == "agent_crashed") {
      ++s.crashes;
      s.state = SessionState::CRASHED;
    }
    return;
  }
  // Killed by the supervisor: the agent_crashed line that follows is the
  // abnormal end; these say why.
  if (event == "agent_unresponsive") {
    ++s.unresponsive;
    return;
  }
  if (event == "agent_protocol_error") {
    ++s.protocolErrors;
    return;
  }
  if (event == "agent_gave_up") {
    s.gaveUp = true;
    s.gaveUpReason = textField(line, "detail");
    if (s.gaveUpReason.ends_with(GAVE_UP_DETAIL_SUFFIX)) {
      s.gaveUpReason.resize(s.gaveUpReason.size() - GAVE_UP_DETAIL_SUFFIX.size());
    }
    // A restart whose agent could not even be started is counted here.
    if (auto restarts = countOf(line, "restarts")) s.restarts = static_cast<uint32_t>(*restarts);
    s.state = SessionState::GAVE_UP;
    return;
  }

  auto which = agentEventOf(event);
  if (!which) return;
  if (const Json& category = field(line, "category"); category.is_string() && knownCategory(category.get<std::string>())) {
    ++failures_[{event, category.get<std::string>()}];
  }
  switch (*which) {
    // A jobs worker is ready for jobs as soon as it starts: its connections
    // are made per job, not before (its first job_stats may be an interval away).
    case W::STARTED:
      s.state = workload_.kind() == cli::WorkloadKind::JOBS ? SessionState::CONNECTED : SessionState::CONNECTING;
      break;
    case W::CONNECTED:
      ++s.connects;
      ++s.sessionsOpened;
      s.state = SessionState::CONNECTED;
      break;
    case W::CONNECT_FAILED:
      ++s.connectFailures;
      s.state = SessionState::CONNECT_FAILED;
      s.lastError = textField(line, "category") + ": " + textField(line, "message");
      break;
    case W::DISCONNECTED:
      ++s.disconnects;
      s.state = SessionState::DISCONNECTED;
      s.lastError = textField(line, "cause") + ": " + textField(line, "message");
      break;
    case W::DISCONNECT_INJECTED: ++s.injectedDrops; break;
    case W::RECONNECTED:
      ++s.reconnects;
      ++s.sessionsOpened;
      if (auto ms = countOf(line, "elapsed_ms")) {
        s.reconnectMs.push_back(static_cast<int64_t>(*ms));
        reconnectBuckets_.add(static_cast<int64_t>(*ms));
        reconnectHist_.record(*ms);
      }
      s.state = SessionState::CONNECTED;
      break;
    case W::RECONNECT_FAILED: ++s.reconnectFailures; break;
    // Cycles and polls are counted from one kind of line only
    // (WorkloadModel::fromRollups): a --log-detail full log has both.
    case W::EXEC_POLL:
      if (!workload_.fromRollups()) ++s.execPolls;
      break;
    case W::EXEC_POLL_STATS:
      if (workload_.fromRollups()) s.execPolls += static_cast<uint32_t>(countOf(line, "polls").value_or(0));
      break;
    case W::EXEC_POLL_ERROR: ++s.execPollErrors; break;
    case W::PTY_CYCLE:
      if (workload_.fromRollups()) break;
      ++s.ptyCycles;
      s.ptyBytes += countOf(line, "bytes").value_or(0);
      break;
    case W::PTY_STATS:
      if (!workload_.fromRollups()) break;
      s.ptyCycles += static_cast<uint32_t>(countOf(line, "cycles").value_or(0));
      s.ptyBytes += countOf(line, "bytes").value_or(0);
      break;
    case W::PTY_ERROR: ++s.ptyErrors; break;
    case W::AUTH_FAILED:
      s.authFailed = true;
      s.state = SessionState::AUTH_FAILED;
      break;
    case W::MANUAL_RECONNECT:
      s.manual = true;
      s.state = SessionState::MANUAL_RECONNECT_REQUIRED;
      break;
    case W::STOPPED: break;
    // The workloads' figures are the WorkloadModel's (above). A churn
    // agent that reports is working: its slot counts as up.
    case W::CHURN_STATS:
      s.holdsNoSession = true;
      if (s.state == SessionState::CONNECTING || s.state == SessionState::RESTARTING) s.state = SessionState::CONNECTED;
      break;
    // A jobs worker that reports is working, like a churn agent.
    case W::JOB_RESULT:
    case W::JOB_CONNECTION_CLOSED:
      s.holdsNoSession = true;
      if (s.state == SessionState::CONNECTING || s.state == SessionState::RESTARTING) s.state = SessionState::CONNECTED;
      break;
    case W::PTY_FLOOD:
      ++s.ptyFloods;
      break;
    case W::HEARTBEAT:   // never logged
    case W::CHURN_CONNECTION:
    case W::TRANSFER_ROUND:
    case W::TRANSFER_CORRUPT:
    case W::TRANSFER_STALL:
    case W::TRANSFER_ERROR:
      break;
  }
}

void RunModel::configureWorkload(const cli::Options& o, int64_t startNs) {
  // The warm-up as the run caps it (at half the run), as run_started says it.
  leaks_.configure(std::min<double>(o.warmupSecs, o.durationSecs / 2.0), o.leakMinFitSecs, startNs);
  workload_.configure(o.workload, o.churnRate, o.churnRampSteps, o.maxConnFailures, o.maxConnectP99Ms, startNs);
  workload_.countFromRollups(true);  // this build's agents always send rollups
  if (o.workload == cli::WorkloadKind::JOBS) {
    workload_.configureJobs(o.compareReuse ? "compare" : o.reuse ? "on" : "off", static_cast<uint32_t>(o.slots.size()));
  }
  for (auto& [id, s] : sessions_) s.holdsNoSession = holdsNoSession(o.workload);
}

void RunModel::noteRunStarted(const Json& line) {
  runStartNs_ = parseIsoTimestamp(textField(line, "ts"));
  faults_.onRunStarted(line);
  pacer_.onRunStarted(line);
}

int64_t RunModel::runStartNs() const { return runStartNs_ ? *runStartNs_ : firstNs_.value_or(0); }

Json RunModel::faultsJson(int64_t endNs) const { return faults_.json(endNs, runStartNs(), sessionsInRun()); }

SessionState RunModel::stateBeforeExit(uint32_t id) const {
  SessionState state = session(id).state;
  return state == SessionState::CRASHED ? SessionState::RESTARTING : state;
}

uint32_t RunModel::sumOf(uint32_t SessionModel::*f) const {
  uint32_t n = 0;
  for (const auto& [id, s] : sessions_) n += s.*f;
  return n;
}

std::vector<int64_t> RunModel::reconnectMs() const {
  std::vector<int64_t> all;
  for (const auto& [id, s] : sessions_) all.insert(all.end(), s.reconnectMs.begin(), s.reconnectMs.end());
  return all;
}

uint32_t RunModel::abnormalEnds() const {
  uint32_t n = 0;
  for (const auto& [id, s] : sessions_) {
    // A crash is an abnormal end whether or not the restart brought the
    // session back; a session that then ended badly for another reason
    // (restart never connected) is one more.
    n += s.crashes;
    bool endedByCrash = s.crashed() || s.gaveUp;
    if (!endedByCrash && !s.holdsNoSession && (s.connects == 0 || !s.up())) ++n;
  }
  return n;
}

RunModel::StateCounts RunModel::sessionsByState() const {
  StateCounts counts{};
  for (const auto& [id, s] : sessions_) ++counts[static_cast<size_t>(s.state)];
  return counts;
}

RunModel::Progress RunModel::progress() const {
  Progress p;
  p.sessions = sessions_.size();
  for (const auto& [id, s] : sessions_) {
    p.up += s.up() ? 1 : 0;
    p.manual += (s.manual || s.authFailed) ? 1 : 0;
    p.reconnecting += (!s.up() && !s.manual && !s.authFailed && s.connects > 0) ? 1 : 0;
    p.reconnects += s.reconnects;
  }
  p.reconnectP95Ms = percentile(reconnectMs(), 0.95);
  return p;
}

Json RunModel::summary(int64_t ns, double durationSecs, uint64_t linesLogged) const {
  uint32_t interrupts = 0, recovered = 0, up = 0, manual = 0, attempts = 0, opened = 0, authFailed = 0, gaveUp = 0;
  std::vector<int64_t> allReconnectMs;
  Json perSession = Json::array();
  for (const auto& [id, s] : sessions_) {
    interrupts += s.disconnects;
    recovered += s.reconnects;
    up += s.up() ? 1 : 0;
    manual += s.manual ? 1 : 0;
    attempts += s.reconnects + s.reconnectFailures;
    opened += s.sessionsOpened;
    authFailed += s.authFailed ? 1 : 0;
    gaveUp += s.gaveUp ? 1 : 0;
    allReconnectMs.insert(allReconnectMs.end(), s.reconnectMs.begin(), s.reconnectMs.end());
    Json j;
    j["session_id"] = s.id;
    j["host"] = s.host;
    j["state"] = std::string(stateName(s.state));
    j["up_at_end"] = s.up();
    j["connects"] = s.connects;
    j["connect_failures"] = s.connectFailures;
    j["disconnects"] = s.disconnects;
    j["reconnects"] = s.reconnects;
    j["reconnect_failures"] = s.reconnectFailures;
    j["exec_polls"] = s.execPolls;
    j["exec_poll_errors"] = s.execPollErrors;
    j["pty_cycles"] = s.ptyCycles;
    j["pty_errors"] = s.ptyErrors;
    j["sessions_opened"] = s.sessionsOpened;
    j["agent_crashes"] = s.crashes;
    j["agent_restarts"] = s.restarts;
    j["agents_unresponsive"] = s.unresponsive;
    j["agent_protocol_errors"] = s.protocolErrors;
    j["pty_floods"] = s.ptyFloods;
    j["gave_up"] = s.gaveUp;
    j["reconnect_p95_ms"] = orNull(percentile(s.reconnectMs, 0.95));
    j["reconnect_attempts"] = s.reconnects + s.reconnectFailures;
    j["reconnect_success_rate_pct"] = orNull(ratePct(s.reconnects, s.disconnects));
    j["reconnect_p50_ms"] = orNull(percentile(s.reconnectMs, 0.50));
    j["reconnect_max_ms"] = orNull(percentile(s.reconnectMs, 1.0));
    j["manual"] = s.manual;
    j["auth_refused"] = s.authFailed;  // not "auth_failed": that is an event name
    std::string reason = s.abnormalReason();
    j["abnormal_end"] = reason.empty() ? Json(nullptr) : Json(reason);
    if (s.lastExit) j["agent_exit"] = *s.lastExit;
    perSession.push_back(std::move(j));
  }
  uint32_t abnormal = abnormalEnds();
  Json j = lineHead(ns, std::nullopt, "", "summary");
  char detail[256];
  std::snprintf(detail, sizeof detail, "%zu sessions, %u up at end, %u abnormal ends, %u/%u reconnected",
                sessions_.size(), up, abnormal, recovered, interrupts);
  j["detail"] = detail;
  j["success"] = abnormal == 0;
  j["sessions"] = sessions_.size();
  j["duration_secs"] = std::round(durationSecs * 10.0) / 10.0;
  j["abnormal_ends"] = abnormal;
  j["sessions_up_at_end"] = up;
  j["sessions_manual"] = manual;
  j["interrupts"] = interrupts;
  j["reconnects"] = recovered;
  j["agent_crashes"] = crashes();
  j["agent_restarts"] = restarts();
  j["agents_unresponsive"] = sumOf(&SessionModel::unresponsive);
  j["agent_protocol_errors"] = sumOf(&SessionModel::protocolErrors);
  j["pty_floods"] = sumOf(&SessionModel::ptyFloods);
  j["sessions_gave_up"] = gaveUp;
  j["global_reconnect_rate_pct"] = orNull(ratePct(recovered, interrupts));
  j["global_reconnect_p50_ms"] = orNull(percentile(allReconnectMs, 0.50));
  j["global_reconnect_p95_ms"] = orNull(percentile(allReconnectMs, 0.95));
  j["global_reconnect_max_ms"] = orNull(percentile(allReconnectMs, 1.0));
  // Attempts, not interrupts: how hard the sessions had to try.
  j["reconnect_attempts"] = attempts;
  j["reconnect_attempt_success_pct"] = orNull(ratePct(recovered, attempts));
  j["sessions_auth_failed"] = authFailed;
  // Session churn: SSH sessions opened per slot per hour; a slot that held
  // one session for the whole run opened exactly one.
  j["sessions_opened"] = opened;
  double hours = durationSecs / 3600.0;
  j["sessions_opened_per_slot_per_hour"] =
      sessions_.empty() || hours <= 0
          ? Json(nullptr)
          : Json(std::round(100.0 * opened / static_cast<double>(sessions_.size()) / hours) / 100.0);
  j["events_logged"] = linesLogged;
  j["per_session"] = std::move(perSession);
  j["workload"] = workload_.json();
  j["faults"] = faultsJson(ns);
  j["faults_ignored"] = faults_.ignored();
  j["pacer"] = pacer_.json();
  j["histograms"] = histogramsJson(histograms());
  return j;
}

std::map<std::string, hdr::Histogram> RunModel::histograms() const {
  std::map<std::string, hdr::Histogram> out;
  if (!reconnectHist_.empty()) out.emplace("reconnect_ms", reconnectHist_);
  auto add = [&](const std::string& name, const LatencyHistogram& h) {
    if (!h.empty()) out.emplace(name, hdr::fromLatency(h));
  };
  switch (workload_.kind()) {
    case cli::WorkloadKind::PTY: add("echo_us", workload_.echo()); break;
    case cli::WorkloadKind::CHURN:
      for (const auto& [phase, h] : workload_.churn().phases) add("churn_" + phase + "_us", h);
      break;
    case cli::WorkloadKind::JOBS:
      for (const char* name : JOB_LATENCIES) add(std::string("job_") + name + "_us", workload_.jobs().latency(name));
      break;
    case cli::WorkloadKind::TRANSFER: break;  // its figures are rates per round, not latencies
  }
  return out;
}

Json RunModel::histogramsJson(const std::map<std::string, hdr::Histogram>& histograms) {
  Json j = Json::object();
  for (const auto& [name, h] : histograms) j[name] = hdr::toBase64(h);
  return j;
}

VerdictInputs RunModel::verdictInputs() const {
  VerdictInputs in;
  in.abnormalEnds = abnormalEnds();
  in.interrupts = interrupts();
  in.reconnects = reconnects();
  in.reconnectP95Ms = percentile(reconnectMs(), 0.95);
  in.workload = workload_.kind();
  const ChurnFigures& c = workload_.churn();
  in.connRatePerSec = workload_.connRatePerSec();
  in.connRateFromRamp = !c.steps.empty();
  in.connAttempted = c.attempted;
  in.connFailures = c.failed;
  if (auto it = c.phases.find("total"); it != c.phases.end() && !it->second.empty()) {
    in.connectP99Ms = figuresOf(it->second).p99Ms;
  }
  const TransferFigures& t = workload_.transfer();
  if (auto mbps = t.aggregateMbPerSec()) in.throughputMbPerSec = std::round(*mbps * 10.0) / 10.0;
  in.corruptRounds = t.corruptRounds;
  const JobsFigures& j = workload_.jobs();
  in.jobsResults = j.results();
  in.jobsFailed = j.sum(&JobsFigures::Phase::failed);
  in.jobsAborted = j.sum(&JobsFigures::Phase::aborted);
  in.jobsLost = j.lost();
  in.jobsUnaccounted = j.submitted() > j.results() ? j.submitted() - j.results() : 0;
  in.jobP95Ms = j.totalP95Ms();
  leaks_.fill(in);
  return in;
}

uint32_t RunModel::sessionsInRun() const {
  if (declaredSessions_) return *declaredSessions_;
  uint32_t n = 0;
  for (const auto& [id, s] : sessions_) n += s.host.empty() ? 0 : 1;
  return n;
}

std::string RunModel::topology() const {
  std::set<std::string> distinct;
  size_t withHost = 0;
  for (const auto& [id, s] : sessions_) {
    if (s.host.empty()) continue;
    distinct.insert(s.host);
    ++withHost;
  }
  return distinct.size() <= 1 ? "B" : distinct.size() >= withHost ? "A" : "A+B";
}

double RunModel::spanSecs() const { return firstNs_ ? static_cast<double>(lastNs_ - *firstNs_) / 1e9 : 0; }

}  // namespace sshsoak
