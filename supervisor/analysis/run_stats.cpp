#include "supervisor/analysis/run_stats.h"

#include <algorithm>
#include <cmath>

#include "shared/event_codec.h"

namespace sshsoak {

std::optional<int64_t> percentile(std::vector<int64_t> values, double q) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  size_t i = static_cast<size_t>(std::floor(static_cast<double>(values.size()) * q));
  return values[std::min(i, values.size() - 1)];
}

RunStats::RunStats(const std::vector<std::string>& hosts) {
  for (size_t i = 0; i < hosts.size(); ++i) {
    SessionStats s;
    s.id = static_cast<uint32_t>(i);
    s.host = hosts[i];
    sessions_.push_back(std::move(s));
  }
}

void RunStats::onEvent(wire::Event::Reader e) {
  if (e.getSessionId() >= sessions_.size()) return;
  SessionStats& s = sessions_[e.getSessionId()];
  using W = wire::Event::Which;
  switch (e.which()) {
    case W::STARTED: s.state = "connecting"; break;
    case W::CONNECTED:
      ++s.connects;
      ++s.sessionsOpened;
      s.up = true;
      s.state = "connected";
      break;
    case W::CONNECT_FAILED:
      ++s.connectFailures;
      s.up = false;
      s.state = "connect_failed";
      s.lastError = std::string(categoryName(e.getConnectFailed().getCategory())) + ": " +
                    std::string(e.getConnectFailed().getMessage());
      break;
    case W::DISCONNECTED:
      ++s.disconnects;
      s.up = false;
      s.state = "disconnected";
      s.lastError = std::string(causeName(e.getDisconnected().getCause())) + ": " +
                    std::string(e.getDisconnected().getMessage());
      break;
    case W::DISCONNECT_INJECTED: ++s.injectedDrops; break;
    case W::RECONNECTED:
      ++s.reconnects;
      ++s.sessionsOpened;
      if (e.getElapsedMs() >= 0) s.reconnectMs.push_back(e.getElapsedMs());
      s.up = true;
      s.state = "connected";
      break;
    case W::RECONNECT_FAILED: ++s.reconnectFailures; break;
    case W::EXEC_POLL: ++s.execPolls; break;
    case W::EXEC_POLL_ERROR: ++s.execPollErrors; break;
    case W::PTY_CYCLE:
      ++s.ptyCycles;
      s.ptyBytes += e.getPtyCycle().getBytes();
      break;
    case W::PTY_ERROR: ++s.ptyErrors; break;
    case W::AUTH_FAILED:
      s.authFailed = true;
      s.up = false;
      s.state = "auth_failed";
      break;
    case W::MANUAL_RECONNECT:
      s.manual = true;
      s.up = false;
      s.state = "manual_reconnect_required";
      break;
    case W::STOPPED: break;
  }
}

std::string RunStats::onAgentExit(uint32_t id, const ExitInfo& exit, bool expected) {
  if (id >= sessions_.size()) return "";
  SessionStats& s = sessions_[id];
  std::string before = s.state;
  s.lastExit = exit;
  if (!expected || !exit.clean()) {
    s.crashed = true;
    ++s.crashes;
    s.up = false;
    s.state = "crashed";
  }
  return before;
}

void RunStats::onAgentRestart(uint32_t id) {
  if (id >= sessions_.size()) return;
  SessionStats& s = sessions_[id];
  ++s.restarts;
  s.crashed = false;
  s.state = "restarting";
}

void RunStats::onGaveUp(uint32_t id, const std::string& reason) {
  if (id >= sessions_.size()) return;
  SessionStats& s = sessions_[id];
  s.gaveUp = true;
  s.gaveUpReason = reason;
  s.up = false;
  s.state = "gave_up";
}

uint32_t RunStats::sumOf(uint32_t SessionStats::*field) const {
  uint32_t n = 0;
  for (const auto& s : sessions_) n += s.*field;
  return n;
}

std::vector<int64_t> RunStats::allReconnectMs() const {
  std::vector<int64_t> all;
  for (const auto& s : sessions_) all.insert(all.end(), s.reconnectMs.begin(), s.reconnectMs.end());
  return all;
}

std::string RunStats::abnormalReason(const SessionStats& s) const {
  if (s.gaveUp) return "given up after " + std::to_string(s.crashes) + " agent crashes (" + s.gaveUpReason + ")";
  if (s.crashed && s.lastExit) return "agent ended with " + s.lastExit->text();
  if (s.crashed) return "agent ended unexpectedly";
  if (s.connects == 0) return "never connected" + (s.lastError.empty() ? "" : " (" + s.lastError + ")");
  if (!s.up) return "session lost without recovery" + (s.lastError.empty() ? "" : " (" + s.lastError + ")");
  if (s.crashes > 0) return std::to_string(s.crashes) + " agent crash(es), restarted and recovered";
  return "";
}

uint32_t RunStats::abnormalEnds() const {
  uint32_t n = 0;
  for (const auto& s : sessions_) {
    // A crash is an abnormal end whether or not the restart brought the
    // session back; a session that then ended badly for another reason
    // (restart never connected) is one more.
    n += s.crashes;
    bool endedByCrash = s.crashed || s.gaveUp;
    if (!endedByCrash && (s.connects == 0 || !s.up)) ++n;
  }
  return n;
}

Json RunStats::summary(int64_t ns, double durationSecs, uint64_t linesLogged) const {
  uint32_t interrupts = 0, recovered = 0, up = 0, manual = 0, attempts = 0, opened = 0, authFailed = 0;
  std::vector<int64_t> allReconnectMs;
  Json perSession = Json::array();
  for (const auto& s : sessions_) {
    interrupts += s.disconnects;
    recovered += s.reconnects;
    up += s.up ? 1 : 0;
    manual += s.manual ? 1 : 0;
    attempts += s.reconnects + s.reconnectFailures;
    opened += s.sessionsOpened;
    authFailed += s.authFailed ? 1 : 0;
    allReconnectMs.insert(allReconnectMs.end(), s.reconnectMs.begin(), s.reconnectMs.end());
    Json j;
    j["session_id"] = s.id;
    j["host"] = s.host;
    j["state"] = s.state;
    j["up_at_end"] = s.up;
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
    j["gave_up"] = s.gaveUp;
    auto p95 = percentile(s.reconnectMs, 0.95);
    j["reconnect_p95_ms"] = p95 ? Json(*p95) : Json(nullptr);
    auto optMs = [](std::optional<int64_t> v) { return v ? Json(*v) : Json(nullptr); };
    j["reconnect_attempts"] = s.reconnects + s.reconnectFailures;
    j["reconnect_success_rate_pct"] =
        s.disconnects == 0 ? Json(nullptr) : Json(std::round(1000.0 * s.reconnects / s.disconnects) / 10.0);
    j["reconnect_p50_ms"] = optMs(percentile(s.reconnectMs, 0.50));
    j["reconnect_max_ms"] = optMs(percentile(s.reconnectMs, 1.0));
    j["manual"] = s.manual;
    j["auth_failed"] = s.authFailed;
    std::string reason = abnormalReason(s);
    j["abnormal_end"] = reason.empty() ? Json(nullptr) : Json(reason);
    if (s.lastExit) j["agent_exit"] = s.lastExit->text();
    perSession.push_back(std::move(j));
  }
  uint32_t abnormal = abnormalEnds();
  Json j = lineHead(ns, std::nullopt, "", "summary");
  auto p50 = percentile(allReconnectMs, 0.50);
  auto p95 = percentile(allReconnectMs, 0.95);
  auto pmax = percentile(allReconnectMs, 1.0);
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
  j["agent_crashes"] = totalCrashes();
  j["agent_restarts"] = totalRestarts();
  uint32_t gaveUp = 0;
  for (const auto& s : sessions_) gaveUp += s.gaveUp ? 1 : 0;
  j["sessions_gave_up"] = gaveUp;
  j["global_reconnect_rate_pct"] =
      interrupts == 0 ? Json(nullptr) : Json(std::round(1000.0 * recovered / interrupts) / 10.0);
  j["global_reconnect_p50_ms"] = p50 ? Json(*p50) : Json(nullptr);
  j["global_reconnect_p95_ms"] = p95 ? Json(*p95) : Json(nullptr);
  j["global_reconnect_max_ms"] = pmax.has_value() ? Json(pmax.value()) : Json(nullptr);
  // Attempts, not interrupts: how hard the sessions had to try.
  j["reconnect_attempts"] = attempts;
  j["reconnect_attempt_success_pct"] =
      attempts == 0 ? Json(nullptr) : Json(std::round(1000.0 * recovered / attempts) / 10.0);
  j["sessions_auth_failed"] = authFailed;
  // Session churn: SSH sessions opened per slot per hour; a slot that held
  // one session for the whole run opened exactly one.
  j["sessions_opened"] = opened;
  double hours = durationSecs / 3600.0;
  j["sessions_opened_per_slot_per_hour"] =
      sessions_.empty() || hours <= 0 ? Json(nullptr)
                                      : Json(std::round(100.0 * opened / static_cast<double>(sessions_.size()) / hours) / 100.0);
  j["events_logged"] = linesLogged;
  j["per_session"] = std::move(perSession);
  return j;
}

}  // namespace sshsoak
