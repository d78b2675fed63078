// The churn workload's target rate over a run, one definition for both
// sides: the supervisor reports it (cli::ChurnRate::targetAt) and every
// agent paces its connections by it (session_agent/workloads/churn.h).
//
// Constant: `startPerSec` for ever (0: unpaced). A ramp: `steps` equal steps
// over `rampMs`, step k (0 .. steps-1) at start + k/(steps-1) of the rise,
// so the last step already runs at the end rate; after the ramp, the end rate.
// The target is constant on each step ("piece"); the open-loop schedule is
// the integral of it (ChurnRamp::startsBy), so that start number i falls
// where the run-wide count of intended starts reaches i.
#pragma once

#include <cstdint>

namespace sshsoak {

struct ChurnRamp {
  double startPerSec = 0;
  double endPerSec = 0;
  int64_t rampMs = 0;  // 0: constant at endPerSec (== startPerSec)
  uint32_t steps = 1;

  bool ramp() const { return rampMs > 0; }
  // The run-wide target t ms after the schedule began.
  double targetAt(int64_t ms) const;

  // The pieces on which the target is constant: piece i starts at
  // pieceStartMs(i) and runs at pieceRate(i) until the next one starts; the
  // last one (the end rate after the ramp) never ends.
  uint32_t pieces() const;
  double pieceStartMs(uint32_t piece) const;
  double pieceRate(uint32_t piece) const;
  // The intended starts of the whole run up to t ms (the integral of the
  // target; fractional).
  double startsBy(double ms) const;
  // When the run-wide count of intended starts reaches `starts`, in ms
  // after the schedule began (startsBy's inverse); +infinity if it never
  // does (a rate of 0 at the end).
  double timeOfStart(double starts) const;
};

}  // namespace sshsoak
