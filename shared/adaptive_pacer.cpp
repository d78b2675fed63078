#include "shared/adaptive_pacer.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace sshsoak {

// A lock-based atomic would be a mutex in shared memory, which a SIGKILLed
// agent could leave locked.
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the pacer's words must be lock-free atomics");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "the pacer's words must be lock-free atomics");
static_assert(std::is_standard_layout_v<PacerState>, "the pacer state is shared by processes");

namespace {

constexpr int TIME_BITS = 44;
constexpr uint64_t TIME_MASK = (uint64_t{1} << TIME_BITS) - 1;
constexpr uint32_t RATE_MAX_MILLI = (uint32_t{1} << (64 - TIME_BITS)) - 1;
constexpr int LATENCY_BITS = 20;
constexpr uint64_t LATENCY_MASK = (uint64_t{1} << LATENCY_BITS) - 1;
constexpr int64_t LATENCY_UNIT_US = 16;

static_assert(PACER_MAX_RATE_PER_SEC * 1000 <= RATE_MAX_MILLI, "the packed rate must hold the ceiling");

uint64_t pack(uint32_t rateMilli, int64_t timeUs) noexcept {
  return (uint64_t{rateMilli} << TIME_BITS) | (static_cast<uint64_t>(std::clamp<int64_t>(timeUs, 0, TIME_MASK)));
}
uint32_t rateOf(uint64_t word) noexcept { return static_cast<uint32_t>(word >> TIME_BITS); }
int64_t timeOf(uint64_t word) noexcept { return static_cast<int64_t>(word & TIME_MASK); }

// Microseconds a token costs at a rate of `milli` thousandths per second.
int64_t intervalUs(uint32_t milli) noexcept {
  return std::max<int64_t>(1, std::llround(1e9 / std::max<uint32_t>(milli, 1)));
}

}  // namespace

std::string_view overloadReason(ConnectSignal signal) noexcept {
  switch (signal) {
    case ConnectSignal::RESET_BEFORE_BANNER: return "overload: resets before banner";
    case ConnectSignal::MAX_STARTUPS: return "overload: MaxStartups";
    case ConnectSignal::TIMEOUT: return "overload: timeouts";
    case ConnectSignal::SLOW: return "overload: handshake time rising";
    case ConnectSignal::NONE: break;
  }
  return "";
}

uint32_t AdaptivePacer::encodeRate(double ratePerSec) noexcept {
  if (!std::isfinite(ratePerSec)) return RATE_MAX_MILLI;
  const double milli = std::round(std::clamp(ratePerSec, PACER_MIN_RATE_PER_SEC, PACER_MAX_RATE_PER_SEC) * 1000.0);
  return static_cast<uint32_t>(std::clamp<double>(milli, 1, RATE_MAX_MILLI));
}

int64_t AdaptivePacer::nowUs(int64_t nowNs) const noexcept {
  return std::clamp<int64_t>((nowNs - baseNs_) / 1000, 1, TIME_MASK);
}

void AdaptivePacer::init(double initialRatePerSec) noexcept {
  const double rate = std::clamp(initialRatePerSec, law_.minRatePerSec, law_.maxRatePerSec);
  // Time 0 is "long ago": the full burst is there at once, as in the fixed bucket.
  s_.initialRateMilli = encodeRate(rate);
  s_.rateTat.store(pack(s_.initialRateMilli, 0), std::memory_order_relaxed);
  s_.lastDecrease.store(0, std::memory_order_relaxed);
  s_.minLatency.store(0, std::memory_order_relaxed);
  s_.lastReason.store(static_cast<uint32_t>(ConnectSignal::NONE), std::memory_order_relaxed);
  for (auto* c : {&s_.ok, &s_.slow, &s_.resetsBeforeBanner, &s_.maxStartups, &s_.timeouts, &s_.increases,
                  &s_.decreases, &s_.restarts}) {
    c->store(0, std::memory_order_relaxed);
  }
}

PacerAcquire AdaptivePacer::tryAcquire(int64_t nowNs) noexcept {
  const int64_t now = nowUs(nowNs);
  uint64_t word = s_.rateTat.load(std::memory_order_relaxed);
  for (;;) {
    // GCRA as in gcraTryAcquire, with the interval of the rate in this word.
    uint32_t milli = rateOf(word);
    const bool restart =
        timeOf(word) != 0 && now - timeOf(word) > law_.idleRestartUs && milli > s_.initialRateMilli;
    if (restart) milli = s_.initialRateMilli;
    const int64_t interval = intervalUs(milli);
    const int64_t limit = int64_t{burst_ - 1} * interval;
    const int64_t tat = std::max(timeOf(word), now);
    const int64_t ahead = tat - now;
    if (ahead > limit) return PacerAcquire{false, (ahead - limit) * 1000};
    if (s_.rateTat.compare_exchange_weak(word, pack(milli, tat + interval), std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
      if (restart) s_.restarts.fetch_add(1, std::memory_order_relaxed);
      return PacerAcquire{true, 0};
    }
  }
}

template <typename F>
bool AdaptivePacer::changeRate(F&& f, int64_t now) noexcept {
  uint64_t word = s_.rateTat.load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t milli = rateOf(word);
    const uint32_t next = f(milli);
    if (next == milli) return false;
    // The time already owed, repriced at the new rate: after a rise the next
    // token is due sooner, after a cut later, in the same CAS.
    int64_t tat = timeOf(word);
    if (tat > now) tat = now + std::llround(static_cast<double>(tat - now) * milli / next);
    if (s_.rateTat.compare_exchange_weak(word, pack(next, tat), std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
      return true;
    }
  }
}

bool AdaptivePacer::decrease(ConnectSignal why, int64_t now) noexcept {
  uint64_t last = s_.lastDecrease.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t at = timeOf(last);
    // Held off: one overload, reported by every connect it hit, is one cut.
    if (at != 0 && now - at < law_.holdoffUs) return false;
    const uint32_t current = rateOf(s_.rateTat.load(std::memory_order_relaxed));
    if (s_.lastDecrease.compare_exchange_weak(last, pack(current, now), std::memory_order_acq_rel,
                                              std::memory_order_relaxed)) {
      break;
    }
  }
  const uint32_t floor = encodeRate(law_.minRatePerSec);
  const bool cut = changeRate(
      [&](uint32_t milli) {
        return std::min(milli, std::max(floor, encodeRate(decodeRate(milli) * law_.decreaseFactor)));
      },
      now);
  if (cut) {
    s_.lastReason.store(static_cast<uint32_t>(why), std::memory_order_relaxed);
    s_.decreases.fetch_add(1, std::memory_order_relaxed);
  }
  return cut;
}

void AdaptivePacer::rise(int64_t now) noexcept {
  const uint64_t last = s_.lastDecrease.load(std::memory_order_relaxed);
  const int64_t at = timeOf(last);
  if (at != 0 && now - at < law_.holdoffUs) return;
  const uint32_t wMax = rateOf(last);  // 0: no decrease yet
  const uint32_t ceiling = encodeRate(law_.maxRatePerSec);
  const bool rose = changeRate(
      [&](uint32_t milli) {
        const double step = (wMax == 0 || milli < wMax) ? law_.risePerOk : law_.probeRise;
        return std::max(milli, std::min(ceiling, encodeRate(decodeRate(milli) + step)));
      },
      now);
  if (rose) s_.increases.fetch_add(1, std::memory_order_relaxed);
}

int64_t AdaptivePacer::recentMinUs(int64_t latencyUs, int64_t now) noexcept {
  const uint64_t units =
      static_cast<uint64_t>(std::clamp<int64_t>((latencyUs + LATENCY_UNIT_US - 1) / LATENCY_UNIT_US, 1, LATENCY_MASK));
  uint64_t word = s_.minLatency.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t start = static_cast<int64_t>(word >> LATENCY_BITS);
    const uint64_t minUnits = word & LATENCY_MASK;
    uint64_t next = 0;
    if (word == 0 || now - start > law_.minWindowUs) {
      next = (static_cast<uint64_t>(now) << LATENCY_BITS) | units;  // a new window
    } else if (units < minUnits) {
      next = (static_cast<uint64_t>(start) << LATENCY_BITS) | units;
    } else {
      return static_cast<int64_t>(minUnits) * LATENCY_UNIT_US;
    }
    if (s_.minLatency.compare_exchange_weak(word, next, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return static_cast<int64_t>(next & LATENCY_MASK) * LATENCY_UNIT_US;
    }
  }
}

void AdaptivePacer::reportSuccess(int64_t latencyUs, int64_t nowNs) noexcept {
  const int64_t now = nowUs(nowNs);
  const int64_t minUs = recentMinUs(latencyUs, now);
  const double slowUs = std::max(static_cast<double>(minUs) * law_.slowFactor,
                                 static_cast<double>(minUs + law_.slowMarginUs));
  if (static_cast<double>(latencyUs) > slowUs) {
    s_.slow.fetch_add(1, std::memory_order_relaxed);
    decrease(ConnectSignal::SLOW, now);
    return;
  }
  s_.ok.fetch_add(1, std::memory_order_relaxed);
  rise(now);
}

void AdaptivePacer::reportFailure(ConnectSignal signal, int64_t nowNs) noexcept {
  switch (signal) {
    case ConnectSignal::NONE: return;
    case ConnectSignal::RESET_BEFORE_BANNER: s_.resetsBeforeBanner.fetch_add(1, std::memory_order_relaxed); break;
    case ConnectSignal::MAX_STARTUPS: s_.maxStartups.fetch_add(1, std::memory_order_relaxed); break;
    case ConnectSignal::TIMEOUT: s_.timeouts.fetch_add(1, std::memory_order_relaxed); break;
    case ConnectSignal::SLOW: s_.slow.fetch_add(1, std::memory_order_relaxed); break;
  }
  decrease(signal, nowUs(nowNs));
}

double AdaptivePacer::ratePerSec() const noexcept {
  return decodeRate(rateOf(s_.rateTat.load(std::memory_order_relaxed)));
}

PacerSnapshot AdaptivePacer::snapshot() const noexcept {
  PacerSnapshot p;
  p.ratePerSec = ratePerSec();
  p.ok = s_.ok.load(std::memory_order_relaxed);
  p.slow = s_.slow.load(std::memory_order_relaxed);
  p.resetsBeforeBanner = s_.resetsBeforeBanner.load(std::memory_order_relaxed);
  p.maxStartups = s_.maxStartups.load(std::memory_order_relaxed);
  p.timeouts = s_.timeouts.load(std::memory_order_relaxed);
  p.increases = s_.increases.load(std::memory_order_relaxed);
  p.decreases = s_.decreases.load(std::memory_order_relaxed);
  p.restarts = s_.restarts.load(std::memory_order_relaxed);
  const uint32_t reason = s_.lastReason.load(std::memory_order_relaxed);
  p.lastReason = reason <= static_cast<uint32_t>(ConnectSignal::SLOW) ? static_cast<ConnectSignal>(reason)
                                                                       : ConnectSignal::NONE;
  return p;
}

}  // namespace sshsoak
