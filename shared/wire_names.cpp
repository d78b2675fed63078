#include "shared/wire_names.h"

namespace sshsoak {

std::string_view eventName(wire::Event::Which which) {
  using W = wire::Event::Which;
  switch (which) {
    case W::STARTED: return "agent_started";
    case W::CONNECTED: return "connected";
    case W::CONNECT_FAILED: return "connect_failed";
    case W::DISCONNECTED: return "disconnected";
    case W::DISCONNECT_INJECTED: return "disconnect_injected";
    case W::RECONNECTED: return "reconnected";
    case W::RECONNECT_FAILED: return "reconnect_failed";
    case W::EXEC_POLL: return "exec_poll";
    case W::EXEC_POLL_ERROR: return "exec_poll_error";
    case W::PTY_CYCLE: return "pty_cycle";
    case W::PTY_ERROR: return "pty_error";
    case W::AUTH_FAILED: return "auth_failed";
    case W::MANUAL_RECONNECT: return "manual_reconnect_required";
    case W::STOPPED: return "agent_stopped";
    case W::CHURN_STATS: return "churn_stats";
    case W::CHURN_CONNECTION: return "churn_connection";
    case W::TRANSFER_ROUND: return "transfer_round";
    case W::TRANSFER_CORRUPT: return "transfer_corrupt";
    case W::TRANSFER_STALL: return "transfer_stall";
    case W::TRANSFER_ERROR: return "transfer_error";
    case W::JOB_RESULT: return "job";
    case W::JOB_CONNECTION_CLOSED: return "job_connection_closed";
    case W::PTY_STATS: return "pty_stats";
    case W::EXEC_POLL_STATS: return "exec_poll_stats";
    case W::HEARTBEAT: return "heartbeat";
    case W::PTY_FLOOD: return "pty_flood";
  }
  return "unknown";
}

std::string_view categoryName(wire::FailureCategory category) {
  using C = wire::FailureCategory;
  switch (category) {
    case C::RESOLVE: return "resolve";
    case C::REFUSED: return "refused";
    case C::TIMEOUT: return "timeout";
    case C::PROTOCOL: return "protocol";
    case C::HOSTKEY: return "hostkey";
    case C::AUTH: return "auth";
    case C::SOCKET: return "socket";
    case C::CHANNEL: return "channel";
    case C::PARSE: return "parse";
    case C::OTHER: return "other";
    case C::ALGORITHMS: return "algorithms";
  }
  return "other";
}

std::string_view causeName(wire::DisconnectCause cause) {
  using D = wire::DisconnectCause;
  switch (cause) {
    case D::END_OF_FILE: return "eof";
    case D::RESET: return "reset";
    case D::SILENCE: return "silence";
    case D::SOCKET_ERROR: return "socket_error";
    case D::INJECTED: return "injected";
    case D::PROTOCOL: return "protocol";
  }
  return "socket_error";
}

std::string_view intensityName(wire::Intensity intensity) {
  switch (intensity) {
    case wire::Intensity::LOW: return "low";
    case wire::Intensity::MEDIUM: return "medium";
    case wire::Intensity::HIGH: return "high";
  }
  return "medium";
}

std::string_view directionName(wire::TransferDirection direction) {
  return direction == wire::TransferDirection::UP ? "up" : "down";
}

std::string_view jobOutcomeName(wire::JobOutcome outcome) {
  switch (outcome) {
    case wire::JobOutcome::DONE: return "done";
    case wire::JobOutcome::FAILED: return "failed";
    case wire::JobOutcome::ABORTED: return "aborted";
    case wire::JobOutcome::CANCELLED: return "cancelled";
  }
  return "failed";
}

std::string_view jobCloseReasonName(wire::JobCloseReason reason) {
  switch (reason) {
    case wire::JobCloseReason::IDLE: return "idle";
    case wire::JobCloseReason::LRU: return "lru";
    case wire::JobCloseReason::DEAD: return "dead";
    case wire::JobCloseReason::DROPPED: return "dropped";
    case wire::JobCloseReason::TAINTED: return "tainted";
  }
  return "dead";
}

std::string_view failureStrategyName(wire::FailureStrategy strategy) {
  switch (strategy) {
    case wire::FailureStrategy::CONTINUE: return "continue";
    case wire::FailureStrategy::ABORT_FIRST: return "abort-first";
    case wire::FailureStrategy::ABORT_AFTER_N: return "abort-after";
  }
  return "abort-first";
}

std::string_view hostKeyPolicyName(wire::HostKeyPolicy policy) {
  switch (policy) {
    case wire::HostKeyPolicy::STRICT: return "strict";
    case wire::HostKeyPolicy::ACCEPT_NEW: return "accept-new";
    case wire::HostKeyPolicy::OFF: return "off";
  }
  return "accept-new";
}

}  // namespace sshsoak
