// Full-jitter exponential backoff for reconnect attempts ("Exponential Backoff
// And Jitter", AWS architecture blog, 2015): the delay before attempt k is
// uniform in [0, min(cap, base * 2^k)]. Spreading the whole interval, not just
// a small jitter around base * 2^k, is what keeps N agents that lost their
// sessions at the same instant from reconnecting in lock step
// (docs/runbook.md, "Failure scenarios").
//
// Pure: it draws numbers and never sleeps; the agent waits in its own poll loop.
#pragma once

#include <cstdint>
#include <random>

namespace sshsoak {

// The values come from sshsoak's --backoff-base-ms / --backoff-cap-ms
// (supervisor/cli.h holds their defaults, the one place for them).
struct BackoffConfig {
  int64_t baseNs = 0;
  int64_t capNs = 0;
};

// A seed that differs between agents started in the same instant: getrandom()
// (random_device if that fails) mixed with the pid, the session id and the
// monotonic clock, through splitmix64.
uint64_t makeBackoffSeed(uint32_t sessionId);

class Backoff {
 public:
  // Explicit seed: repeatable draws for tests. Throws std::invalid_argument
  // if baseNs <= 0 or capNs < 0.
  Backoff(BackoffConfig config, uint64_t seed);
  // One generator per agent, seeded with makeBackoffSeed(sessionId).
  static Backoff forSession(BackoffConfig config, uint32_t sessionId);

  // min(cap, base * 2^attempt). `attempt` counts from 0: the first reconnect
  // attempt after a loss is attempt 0 and waits at most `base`. Saturates at
  // cap instead of overflowing for any attempt, however large.
  int64_t ceilingNs(uint32_t attempt) const noexcept;

  // A delay uniform in [0, ceilingNs(attempt)], both ends included.
  int64_t nextDelayNs(uint32_t attempt);

  // A draw uniform in [0, n), from the same generator (other waits' jitter).
  uint64_t uniform(uint64_t n);

  const BackoffConfig& config() const noexcept { return config_; }

 private:
  BackoffConfig config_;
  std::mt19937_64 rng_;
};

}  // namespace sshsoak
