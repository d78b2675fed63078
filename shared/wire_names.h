// Names shared by every reader of the event stream: the JSONL event names
// (the predecessor's, kept verbatim) and the names of enum values.
#pragma once

#include <string_view>

#include "events.capnp.h"

namespace sshsoak {

std::string_view eventName(wire::Event::Which which);
std::string_view categoryName(wire::FailureCategory category);
std::string_view causeName(wire::DisconnectCause cause);
std::string_view intensityName(wire::Intensity intensity);
std::string_view hostKeyPolicyName(wire::HostKeyPolicy policy);
std::string_view directionName(wire::TransferDirection direction);
std::string_view jobOutcomeName(wire::JobOutcome outcome);          // done, failed, aborted, cancelled
std::string_view jobCloseReasonName(wire::JobCloseReason reason);   // idle, lru, dead, dropped, tainted
std::string_view failureStrategyName(wire::FailureStrategy strategy);  // continue, abort-first, abort-after

}  // namespace sshsoak
