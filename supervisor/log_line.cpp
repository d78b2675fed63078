#include "supervisor/log_line.h"

#include <cmath>

#include "shared/clock.h"
#include "shared/wire_names.h"

namespace sshsoak {

namespace {

// Figures with one decimal, as a number (not a string) in the JSON.
double round1(double v) { return std::round(v * 10.0) / 10.0; }

void putFailure(Json& j, wire::Failure::Reader f) {
  j["category"] = std::string(categoryName(f.getCategory()));
  j["message"] = std::string(f.getMessage());
  if (f.getLibssh2Error() != 0) j["libssh2_error"] = f.getLibssh2Error();
}

void putConnected(Json& j, wire::Connected::Reader c) {
  j["handshake_ms"] = c.getHandshakeMs();
  j["auth_ms"] = c.getAuthMs();
  j["first_exec_ms"] = c.getFirstExecMs();
  j["kex"] = std::string(c.getKex());
  j["hostkey_type"] = std::string(c.getHostKeyType());
  j["cipher"] = std::string(c.getCipher());
  j["mac"] = std::string(c.getMac());
  if (c.getHostKeyAdded()) j["hostkey_added"] = true;
}

}  // namespace

Json lineHead(int64_t ns, std::optional<uint32_t> sessionId, const std::string& host,
              std::string_view event) {
  Json j;
  j["ts"] = isoTimestamp(ns);
  j["session_id"] = sessionId ? Json(*sessionId) : Json(nullptr);
  j["host"] = host.empty() ? Json(nullptr) : Json(host);
  j["event"] = std::string(event);
  j["detail"] = nullptr;
  j["elapsed_ms"] = nullptr;
  j["attempt"] = nullptr;
  j["success"] = true;
  return j;
}

Json eventToJson(wire::Event::Reader e, const std::string& host) {
  Json j = lineHead(e.getWallNs(), e.getSessionId(), host, eventName(e.which()));
  if (e.hasDetail() && e.getDetail().size() > 0) j["detail"] = std::string(e.getDetail());
  if (e.getElapsedMs() >= 0) j["elapsed_ms"] = e.getElapsedMs();
  if (e.getAttempt() >= 0) j["attempt"] = e.getAttempt();
  j["success"] = e.getSuccess();
  if (e.getTokenGrantedNs() != 0) j["token_granted_at"] = isoTimestamp(e.getTokenGrantedNs());
  if (e.getBackoffMs() >= 0) j["backoff_ms"] = e.getBackoffMs();
  using W = wire::Event::Which;
  switch (e.which()) {
    case W::STARTED:
      j["pid"] = e.getStarted().getPid();
      j["version"] = std::string(e.getStarted().getVersion());
      break;
    case W::CONNECTED: putConnected(j, e.getConnected()); break;
    case W::RECONNECTED: putConnected(j, e.getReconnected()); break;
    case W::CONNECT_FAILED: putFailure(j, e.getConnectFailed()); break;
    case W::RECONNECT_FAILED: putFailure(j, e.getReconnectFailed()); break;
    case W::EXEC_POLL_ERROR: putFailure(j, e.getExecPollError()); break;
    case W::PTY_ERROR: putFailure(j, e.getPtyError()); break;
    case W::AUTH_FAILED: putFailure(j, e.getAuthFailed()); break;
    case W::MANUAL_RECONNECT: putFailure(j, e.getManualReconnect()); break;
    case W::DISCONNECTED: {
      auto d = e.getDisconnected();
      j["cause"] = std::string(causeName(d.getCause()));
      j["silent_ms"] = d.getSilentMs();
      j["message"] = std::string(d.getMessage());
      break;
    }
    case W::EXEC_POLL: {
      auto p = e.getExecPoll();
      j["rtt_ms"] = p.getRttMs();
      j["cpu_busy_pct"] = round1(p.getCpuBusyPct());
      j["mem_used_pct"] = round1(p.getMemUsedPct());
      j["disk_used_pct"] = round1(p.getDiskUsedPct());
      j["bytes"] = p.getBytes();
      break;
    }
    case W::PTY_CYCLE: {
      auto p = e.getPtyCycle();
      j["bytes"] = p.getBytes();
      j["lines"] = p.getLines();
      j["ms"] = p.getMs();
      j["cycle"] = p.getCycle();
      j["expected_lines"] = p.getExpectedLines();
      break;
    }
    case W::DISCONNECT_INJECTED:
    case W::STOPPED:
      break;
  }
  return j;
}

}  // namespace sshsoak
