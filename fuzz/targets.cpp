#include "fuzz/fuzz_targets.h"

namespace sshsoak::fuzz {

const std::vector<Target>& targets() {
  static const std::vector<Target> all{
      {"frame_events", frameEvents}, {"agent_frames", agentFrames}, {"report", report},
      {"cli", cli},                  {"drop_spec", dropSpec},       {"fault_cmd", faultCmd},
      {"jobs_file", jobsFile},       {"fault_spec", faultSpec},
  };
  return all;
}

}  // namespace sshsoak::fuzz
