#include "supervisor/run/restart_policy.h"

#include <algorithm>

namespace sshsoak {

RestartDecision RestartPolicy::onCrash(int64_t nowMs, int64_t startedMs) {
  if (nowMs - startedMs >= config_.stableUptimeMs) consecutive_ = 0;
  ++consecutive_;
  crashTimesMs_.push_back(nowMs);
  while (!crashTimesMs_.empty() && nowMs - crashTimesMs_.front() >= config_.windowMs) crashTimesMs_.pop_front();

  RestartDecision d;
  d.crashesInWindow = static_cast<uint32_t>(crashTimesMs_.size());
  if (d.crashesInWindow >= config_.maxCrashes) {
    d.giveUp = true;
    return d;
  }
  // min * 2^(n-1), computed without overflow: stop doubling at the cap.
  int64_t delay = config_.minDelayMs;
  for (uint32_t i = 1; i < consecutive_ && delay < config_.maxDelayMs; ++i) delay *= 2;
  d.delayMs = std::min(delay, config_.maxDelayMs);
  return d;
}

}  // namespace sshsoak
