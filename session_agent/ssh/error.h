// The agent layer's one error shape: every expected failure (connect,
// authenticate, open a channel, parse a remote output) is a
// Result<T, SshError> (shared/result.h). Callers branch on the category and
// on `cancelled`, never on the message text, which is for the log.
#pragma once

#include <string>
#include <utility>

#include "events.capnp.h"
#include "shared/adaptive_pacer.h"

namespace sshsoak::agent {

struct SshError {
  wire::FailureCategory category = wire::FailureCategory::OTHER;
  std::string message;   // the server's or libssh2's words, for the log
  int libssh2Error = 0;  // libssh2's code when a libssh2 call failed; 0 otherwise
  // The wait was cut short because the command pipe turned readable: not a
  // failure of the link, the caller reads its commands and decides.
  bool cancelled = false;
  // What the failure says of the server's load, for adaptive pacing
  // (shared/adaptive_pacer.h): set where the failure is first seen.
  ConnectSignal overload = ConnectSignal::NONE;

  SshError&& signal(ConnectSignal s) && {
    overload = s;
    return std::move(*this);
  }

  static SshError cancel() {
    // The log has always said "cancelled" for such an attempt.
    return SshError{wire::FailureCategory::OTHER, "cancelled", 0, true};
  }
};

}  // namespace sshsoak::agent
