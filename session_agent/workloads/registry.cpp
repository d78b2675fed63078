#include "session_agent/workloads/registry.h"

#include <stdexcept>
#include <string>

#include "session_agent/workloads/churn.h"
#include "session_agent/workloads/exec_poll.h"
#include "session_agent/workloads/jobs.h"
#include "session_agent/workloads/pty_workload.h"
#include "session_agent/workloads/transfer.h"

namespace sshsoak::agent {

namespace {

// A registry entry: the wire spec decoded by workload W's own Spec, kept
// with W's factory.
template <typename W, typename WireSpec>
WorkloadSpec entry(WireSpec wire) {
  return WorkloadSpec::of<W>(W::Spec::fromWire(wire));
}

}  // namespace

WorkloadSpec workloadSpecFromWire(wire::WorkloadSpec::Reader spec) {
  // The registry: one line per workload. A WorkloadSpec member without its
  // line here fails the build (-Wswitch).
  switch (spec.which()) {
    case wire::WorkloadSpec::PTY: return entry<PtyWorkload>(spec.getPty());
    case wire::WorkloadSpec::EXEC_POLL: return entry<ExecPollWorkload>(spec.getExecPoll());
    case wire::WorkloadSpec::CHURN: return WorkloadSpec::sessionless(ChurnSpec::fromWire(spec.getChurn()));
    case wire::WorkloadSpec::TRANSFER: return entry<TransferWorkload>(spec.getTransfer());
    case wire::WorkloadSpec::JOBS: return WorkloadSpec::sessionless(JobsSpec::fromWire(spec.getJobs()));
  }
  throw std::invalid_argument("unknown workload kind " + std::to_string(static_cast<int>(spec.which())) +
                              " (a newer sshsoak than this agent?)");
}

}  // namespace sshsoak::agent
