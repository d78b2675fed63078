#include "session_agent/ssh/backoff.h"

#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <string>

#include "shared/clock.h"

namespace sshsoak {

namespace {

// splitmix64 (Steele, Lea, Flood 2014): a good 64-bit mixer, so that seeds
// that differ in one bit (pid 1000 vs 1001) give unrelated mt19937_64 states.
uint64_t splitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t osEntropy() {
  uint64_t v = 0;
  // GRND_NONBLOCK: an agent must not stall at boot waiting for the entropy
  // pool; the pid/time mix below still separates agents if this fails.
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof v)) return v;
  try {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

uint64_t makeBackoffSeed(uint32_t sessionId) {
  uint64_t s = splitMix64(osEntropy());
  s = splitMix64(s ^ static_cast<uint64_t>(::getpid()));
  s = splitMix64(s ^ (uint64_t{sessionId} << 32));
  return splitMix64(s ^ static_cast<uint64_t>(monoNs()));
}

Backoff::Backoff(BackoffConfig config, uint64_t seed) : config_(config), rng_(seed) {
  if (config_.baseNs <= 0) {
    throw std::invalid_argument("backoff base must be > 0 ns, got " + std::to_string(config_.baseNs));
  }
  if (config_.capNs < 0) {
    throw std::invalid_argument("backoff cap must be >= 0 ns, got " + std::to_string(config_.capNs));
  }
}

Backoff Backoff::forSession(BackoffConfig config, uint32_t sessionId) {
  return Backoff(config, makeBackoffSeed(sessionId));
}

int64_t Backoff::ceilingNs(uint32_t attempt) const noexcept {
  // base << attempt overflows int64 once base > INT64_MAX >> attempt (and a
  // shift by >= 63 is undefined outright): saturate at cap before shifting.
  if (attempt >= 63 || config_.baseNs > (std::numeric_limits<int64_t>::max() >> attempt)) {
    return config_.capNs;
  }
  return std::min(config_.capNs, config_.baseNs << attempt);
}

int64_t Backoff::nextDelayNs(uint32_t attempt) {
  std::uniform_int_distribution<int64_t> dist(0, ceilingNs(attempt));
  return dist(rng_);
}

uint64_t Backoff::uniform(uint64_t n) {
  if (n <= 1) return 0;
  std::uniform_int_distribution<uint64_t> dist(0, n - 1);
  return dist(rng_);
}

}  // namespace sshsoak
