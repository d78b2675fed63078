// The pacer_rate lines of adaptive pacing (docs/reference.md, "Network
// faults and reconnect pacing (issue 16)"): the supervisor reads the shared
// pacer once per sample pass and logs its rate only when it changed, so a
// run's pacer lines are bounded by its length / --sample-interval-secs.
#pragma once

#include <optional>

#include "shared/adaptive_pacer.h"
#include "supervisor/log_line.h"

namespace sshsoak {

class PacerRateLine {
 public:
  // start: the pacer as the run began (its initial rate, zero counts).
  PacerRateLine(const PacerSnapshot& start, uint32_t burst) : last_(start), burst_(burst) {}

  // The fields of a pacer_rate line (after the head) if the rate moved since
  // the last line (or the start); else nothing, and the counts keep adding
  // up for the next line.
  std::optional<Json> next(const PacerSnapshot& now);

 private:
  PacerSnapshot last_;
  uint32_t burst_;
};

}  // namespace sshsoak
