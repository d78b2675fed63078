#include "session_agent/workloads/registry.h"

#include <algorithm>
#include <stdexcept>

namespace sshsoak::agent {

WorkloadSpec workloadSpecFromWire(wire::WorkloadSpec::Reader spec) {
  switch (spec.which()) {
    case wire::WorkloadSpec::PTY: {
      auto p = spec.getPty();
      return PtySpec{p.getIntensity(), p.getIntervalMs(),
                     std::max(p.getRetryIntervalMs(), MIN_WORKLOAD_INTERVAL_MS)};
    }
    case wire::WorkloadSpec::EXEC_POLL: {
      auto e = spec.getExecPoll();
      ExecPollSpec s{std::max(e.getIntervalMs(), MIN_WORKLOAD_INTERVAL_MS), {}};
      for (auto command : e.getCommands()) s.commands.emplace_back(command.cStr());
      if (s.commands.empty()) s.commands = pollCommands();
      // The event's figures are parsed from the outputs by position.
      if (s.commands.size() != pollCommands().size()) {
        throw std::invalid_argument("execPoll workload: " + std::to_string(s.commands.size()) +
                                    " commands; it parses exactly " + std::to_string(pollCommands().size()) +
                                    " outputs (/proc/stat, /proc/meminfo, df)");
      }
      return s;
    }
  }
  throw std::invalid_argument("unknown workload kind " + std::to_string(static_cast<int>(spec.which())) +
                              " (a newer sshsoak than this agent?)");
}

std::unique_ptr<Workload> makeWorkload(const WorkloadSpec& spec) {
  struct Make {
    std::unique_ptr<Workload> operator()(const PtySpec& s) const { return std::make_unique<PtyWorkload>(s); }
    std::unique_ptr<Workload> operator()(const ExecPollSpec& s) const {
      return std::make_unique<ExecPollWorkload>(s);
    }
  };
  return std::visit(Make{}, spec);
}

}  // namespace sshsoak::agent
