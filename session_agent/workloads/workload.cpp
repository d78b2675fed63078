#include "session_agent/workloads/workload.h"

#include "session_agent/event_sink.h"
#include "session_agent/ssh/connection.h"

namespace sshsoak::agent {

std::optional<SessionLost> WorkloadContext::channelFailed(const SshError& failure, ErrorEvent errorEvent) const {
  if (auto cause = conn.transportFailure(failure.libssh2Error)) return SessionLost{*cause, failure.message};
  reportError(errorEvent, wire::FailureCategory::CHANNEL, failure.message, failure.libssh2Error);
  return std::nullopt;
}

void WorkloadContext::reportError(ErrorEvent errorEvent, wire::FailureCategory category, const std::string& message,
                                  int libssh2Error) const {
  events.emit([&](wire::Event::Builder e) { events.failure(e, (e.*errorEvent)(), category, message, libssh2Error); });
}

}  // namespace sshsoak::agent
