#include "supervisor/run/pacer_rate_line.h"

#include <cmath>
#include <string>

namespace sshsoak {

std::optional<Json> PacerRateLine::next(const PacerSnapshot& now) {
  if (now.ratePerSec == last_.ratePerSec && now.window == last_.window) return std::nullopt;
  Json j;
  j["rate_per_sec"] = std::round(now.ratePerSec * 100) / 100;  // two decimals: rates below 1/s are possible
  j["burst"] = burst_;
  // The handshake window (extension of the contract): how many connects may
  // be between their slot and authentication now, and how many were then.
  j["window"] = now.window;
  j["in_flight"] = now.inFlight;
  // The direction of the change names it: down is the last overload sign
  // the pacer acted on, up is successes.
  const bool down = now.ratePerSec < last_.ratePerSec || now.window < last_.window;
  j["reason"] = down && now.lastReason != ConnectSignal::NONE ? std::string(overloadReason(now.lastReason))
                                                              : std::string("rising");
  const uint64_t refused = now.resetsBeforeBanner + now.maxStartups;
  const uint64_t refusedBefore = last_.resetsBeforeBanner + last_.maxStartups;
  j["signals"] = Json{{"ok", now.ok - last_.ok},
                      {"slow", now.slow - last_.slow},
                      {"refused", refused - refusedBefore},
                      {"timeouts", now.timeouts - last_.timeouts},
                      // Extension of the contract: how many of `refused` were
                      // the MaxStartups pattern.
                      {"max_startups", now.maxStartups - last_.maxStartups}};
  j["increases"] = now.increases - last_.increases;
  j["decreases"] = now.decreases - last_.decreases;
  j["slots_freed"] = now.slotsFreed - last_.slotsFreed;
  last_ = now;
  return j;
}

}  // namespace sshsoak
