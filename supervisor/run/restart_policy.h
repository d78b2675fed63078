// When a crashed agent's slot starts again, and when it stops trying.
// Pure: it is told the times, it never reads a clock or sleeps, so the tests
// drive it directly. The shape follows supervisord/systemd/s6: a minimum
// delay, exponential backoff that resets after a stable uptime, and an
// explicit terminal state after too many crashes in a window
// (systemd's StartLimitBurst / StartLimitIntervalSec).
#pragma once

#include <cstdint>
#include <deque>

namespace sshsoak {

// No defaults here: the run's come from cli::Options.
struct RestartConfig {
  int64_t minDelayMs = 0;      // first restart after a crash
  int64_t maxDelayMs = 0;      // the backoff never waits longer
  int64_t stableUptimeMs = 0;  // an agent up this long resets the backoff
  uint32_t maxCrashes = 0;     // this many crashes within the window...
  int64_t windowMs = 0;        // ...give the slot up
};

struct RestartDecision {
  bool giveUp = false;
  int64_t delayMs = 0;           // valid when !giveUp
  uint32_t crashesInWindow = 0;  // including this one
};

class RestartPolicy {
 public:
  explicit RestartPolicy(RestartConfig config) : config_(config) {}

  // An agent that started at startedMs crashed at nowMs (one monotonic clock).
  RestartDecision onCrash(int64_t nowMs, int64_t startedMs);
  const RestartConfig& config() const { return config_; }

 private:
  RestartConfig config_;
  std::deque<int64_t> crashTimesMs_;  // within the window
  uint32_t consecutive_ = 0;          // crashes since the last stable uptime
};

}  // namespace sshsoak
