// The one registration point of the workloads: the spec of each (as the
// supervisor sends it in AgentConfig.workloads) and the factory that makes
// it. A new workload adds its spec to WorkloadSpec and one case to each
// function below.
#pragma once

#include <memory>
#include <variant>

#include "events.capnp.h"
#include "session_agent/workloads/exec_poll.h"
#include "session_agent/workloads/pty_workload.h"
#include "session_agent/workloads/workload.h"

namespace sshsoak::agent {

using WorkloadSpec = std::variant<PtySpec, ExecPollSpec>;

// Throws std::invalid_argument on a spec this agent does not know (a newer
// supervisor) or cannot run.
WorkloadSpec workloadSpecFromWire(wire::WorkloadSpec::Reader spec);

std::unique_ptr<Workload> makeWorkload(const WorkloadSpec& spec);

}  // namespace sshsoak::agent
