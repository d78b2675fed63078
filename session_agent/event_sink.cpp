#include "session_agent/event_sink.h"

#include "shared/wire_names.h"

namespace sshsoak::agent {

void EventSink::failure(wire::Event::Builder event, wire::Failure::Builder f,
                        wire::FailureCategory category, const std::string& message,
                        int libssh2Error) {
  f.setCategory(category);
  f.setMessage(message);
  f.setLibssh2Error(libssh2Error);
  event.setSuccess(false);
  event.setDetail(std::string(categoryName(category)) + ": " + message);
}

}  // namespace sshsoak::agent
