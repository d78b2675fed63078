#include "supervisor/run/pacer_rate_line.h"

#include <cmath>
#include <string>

namespace sshsoak {

std::optional<Json> PacerRateLine::next(const PacerSnapshot& now) {
  if (now.ratePerSec == last_.ratePerSec) return std::nullopt;
  Json j;
  j["rate_per_sec"] = std::round(now.ratePerSec * 100) / 100;  // two decimals: rates below 1/s are possible
  j["burst"] = burst_;
  // The direction of the change names it: down is the last overload sign
  // the pacer acted on, up is successes.
  const bool down = now.ratePerSec < last_.ratePerSec;
  j["reason"] = down && now.decreases == last_.decreases && now.restarts > last_.restarts
                    ? std::string("idle restart")
                : down && now.lastReason != ConnectSignal::NONE ? std::string(overloadReason(now.lastReason))
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
  j["restarts"] = now.restarts - last_.restarts;
  last_ = now;
  return j;
}

}  // namespace sshsoak
