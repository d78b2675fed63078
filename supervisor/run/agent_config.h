// The one place that turns the command line into an agent's configuration
// (schemas/events.capnp, AgentConfig): every default an agent runs with
// comes from cli::Options, none from the agent's own code.
#pragma once

#include <cstdint>
#include <string>

#include "events.capnp.h"
#include "supervisor/cli.h"

namespace sshsoak {

// Fills the configuration of the agent for slot sessionId. bucketName: the
// run's shared token bucket (shm name), empty for none. scheduleStartNs:
// CLOCK_REALTIME when the run began, the origin of the churn schedule that
// every agent shares (a restarted agent joins it where it stands).
void fillAgentConfig(wire::AgentConfig::Builder config, const cli::Options& options, uint32_t sessionId,
                     const std::string& bucketName, int64_t scheduleStartNs = 0);

}  // namespace sshsoak
