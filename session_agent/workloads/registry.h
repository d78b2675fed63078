// The one registration point of the workloads (how to add one: workload.h,
// "Adding a workload"). The supervisor sends a list of wire specs
// (AgentConfig.workloads); each becomes a WorkloadSpec: the workload's own
// Spec, decoded by its Spec::fromWire, kept with the factory of that
// workload. Nothing here names a workload: the list is in registry.cpp.
#pragma once

#include <any>
#include <memory>

#include "events.capnp.h"
#include "session_agent/workloads/workload.h"

namespace sshsoak::agent {

class WorkloadSpec {
 public:
  // W is a Workload with `using Spec = ...;` and a constructor from it.
  template <typename W>
  static WorkloadSpec of(typename W::Spec spec) {
    WorkloadSpec s;
    s.spec_ = std::move(spec);
    s.make_ = [](const std::any& held) -> std::unique_ptr<Workload> {
      return std::make_unique<W>(std::any_cast<const typename W::Spec&>(held));
    };
    return s;
  }

  // A workload that replaces the session loop (churn holds no long-lived
  // session): only its spec is kept, the agent runs it itself (Agent::run),
  // and make() returns nullptr.
  template <typename Spec>
  static WorkloadSpec sessionless(Spec spec) {
    WorkloadSpec s;
    s.spec_ = std::move(spec);
    return s;
  }
  bool sessionless() const { return make_ == nullptr; }

  // The spec if it is a Spec (e.g. PtySpec), else nullptr.
  template <typename Spec>
  const Spec* get() const {
    return std::any_cast<Spec>(&spec_);
  }
  std::unique_ptr<Workload> make() const { return make_ != nullptr ? make_(spec_) : nullptr; }

 private:
  WorkloadSpec() = default;
  std::any spec_;
  std::unique_ptr<Workload> (*make_)(const std::any&) = nullptr;
};

// Throws std::invalid_argument on a spec this agent does not know (a newer
// supervisor) or cannot run.
WorkloadSpec workloadSpecFromWire(wire::WorkloadSpec::Reader spec);

}  // namespace sshsoak::agent
