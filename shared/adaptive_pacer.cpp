#include "shared/adaptive_pacer.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <type_traits>

#include <signal.h>

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
  s_.rateTat.store(pack(encodeRate(rate), 0), std::memory_order_relaxed);
  s_.lastDecrease.store(0, std::memory_order_relaxed);
  s_.lastNarrow.store(0, std::memory_order_relaxed);
  s_.minLatency.store(0, std::memory_order_relaxed);
  s_.lastReason.store(static_cast<uint32_t>(ConnectSignal::NONE), std::memory_order_relaxed);
  for (auto* c : {&s_.ok, &s_.slow, &s_.resetsBeforeBanner, &s_.maxStartups, &s_.timeouts, &s_.increases,
                  &s_.decreases, &s_.slotsFreed}) {
    c->store(0, std::memory_order_relaxed);
  }
  // The whole burst at once, as the fixed bucket allows: the burst is what
  // the user (or the default, below MaxStartups) says the server takes.
  s_.windowMax = std::clamp<uint32_t>(burst_, 1, PACER_MAX_WINDOW);
  s_.window.store(s_.windowMax, std::memory_order_relaxed);
  for (auto& slot : s_.slots) slot.store(0, std::memory_order_relaxed);
}

PacerAcquire AdaptivePacer::tryAcquire(int64_t nowNs) noexcept {
  const int64_t now = nowUs(nowNs);
  uint64_t word = s_.rateTat.load(std::memory_order_relaxed);
  for (;;) {
    // GCRA as in gcraTryAcquire, with the interval of the rate in this word.
    const uint32_t milli = rateOf(word);
    const int64_t interval = intervalUs(milli);
    const int64_t limit = int64_t{burst_ - 1} * interval;
    const int64_t tat = std::max(timeOf(word), now);
    const int64_t ahead = tat - now;
    if (ahead > limit) return PacerAcquire{false, (ahead - limit) * 1000};
    if (s_.rateTat.compare_exchange_weak(word, pack(milli, tat + interval), std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
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

bool AdaptivePacer::claimHoldoff(std::atomic<uint64_t>& word, int64_t now) noexcept {
  uint64_t last = word.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t at = timeOf(last);
    // Held off: one overload, reported by every connect it hit, is one cut.
    if (at != 0 && now - at < law_.holdoffUs) return false;
    const uint32_t current = rateOf(s_.rateTat.load(std::memory_order_relaxed));
    if (word.compare_exchange_weak(last, pack(current, now), std::memory_order_acq_rel, std::memory_order_relaxed)) {
      return true;
    }
  }
}

bool AdaptivePacer::decrease(ConnectSignal why, int64_t now) noexcept {
  // Every sign halves the window: fewer handshakes at once is what a server
  // that refuses, resets, times out or slows down needs first. The window's
  // cuts have a holdoff of their own, so that a slow sign neither holds off
  // a refusal's cut of the rate nor is taken for the rate's last cut (which
  // would slow the rate's climb to the probe's step).
  const bool narrowed = claimHoldoff(s_.lastNarrow, now) &&
                        changeWindow([](uint32_t w) { return std::max<uint32_t>(1, w / 2); });
  // A slow handshake cuts the window only. Within the window, handshakes
  // queue for the server's CPU, so their time rises with the window itself:
  // that is the window's business (fewer at once, each faster), and cutting
  // the rate for it too starved a storm (measured: 23.7 s for 100 sessions
  // against fixed pacing's 9.3 s, the rate held at its floor by the slow
  // signs of its own queue). Refusals, resets and timeouts cut both.
  bool cut = false;
  if (why != ConnectSignal::SLOW && claimHoldoff(s_.lastDecrease, now)) {
    const uint32_t floor = encodeRate(law_.minRatePerSec);
    cut = changeRate(
        [&](uint32_t milli) {
          return std::min(milli, std::max(floor, encodeRate(decodeRate(milli) * law_.decreaseFactor)));
        },
        now);
  }
  if (cut || narrowed) {
    s_.lastReason.store(static_cast<uint32_t>(why), std::memory_order_relaxed);
    s_.decreases.fetch_add(1, std::memory_order_relaxed);
  }
  return cut || narrowed;
}

void AdaptivePacer::rise(int64_t now) noexcept {
  // No rise within a holdoff: the reports of connects made before a cut
  // must not undo it. The rate and the window each look at their own.
  const uint64_t last = s_.lastDecrease.load(std::memory_order_relaxed);
  const int64_t at = timeOf(last);
  if (at == 0 || now - at >= law_.holdoffUs) {
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
  const int64_t narrowedAt = timeOf(s_.lastNarrow.load(std::memory_order_relaxed));
  if (narrowedAt == 0 || now - narrowedAt >= law_.holdoffUs) {
    const uint32_t most = s_.windowMax;
    changeWindow([most](uint32_t w) { return std::min(most, w + 1); });
  }
}

template <typename F>
bool AdaptivePacer::changeWindow(F&& f) noexcept {
  uint32_t w = s_.window.load(std::memory_order_relaxed);
  for (;;) {
    const uint32_t next = f(w);
    if (next == w) return false;
    if (s_.window.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_relaxed)) return true;
  }
}

namespace {

constexpr uint32_t slotPid(uint64_t word) noexcept { return static_cast<uint32_t>(word >> 32); }
// Claim times in ms since the base, + 1 (a slot word is never 0 when held);
// ages are taken modulo 2^32, so a run past 49 days still ages its slots.
uint32_t slotTime(int64_t nowUs) noexcept { return static_cast<uint32_t>(nowUs / 1000) + 1; }

bool processGone(uint32_t pid) noexcept { return pid == 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH); }

}  // namespace

void AdaptivePacer::freeIfAbandoned(int slot, uint64_t word, int64_t now) noexcept {
  // Signed: a claimer whose `now` was taken before the holder claimed (it
  // was descheduled in between, as under a storm's load) sees a claim time
  // after its now, which is young, not 49 days old. (Unsigned, that freed
  // live handshakes' slots at N = 500 and let MaxStartups refuse 9.)
  const int32_t ageMs = static_cast<int32_t>(slotTime(now) - static_cast<uint32_t>(word));
  const int64_t ageUs = int64_t{std::max<int32_t>(ageMs, 0)} * 1000;
  // Only old slots are checked: a live handshake is far shorter than
  // slotCheckAliveUs, and a storm's claimers must not make a syscall per
  // held slot every few ms.
  if (ageUs < law_.slotCheckAliveUs) return;
  if (ageUs < law_.slotStaleUs && !processGone(slotPid(word))) return;
  if (s_.slots[slot].compare_exchange_strong(word, 0, std::memory_order_acq_rel, std::memory_order_relaxed)) {
    s_.slotsFreed.fetch_add(1, std::memory_order_relaxed);
  }
}

int AdaptivePacer::claimSlot(uint32_t pid, int64_t nowNs) noexcept {
  const int64_t now = nowUs(nowNs);
  const uint32_t window = s_.window.load(std::memory_order_acquire);
  const uint32_t slots = std::min(s_.windowMax, PACER_MAX_WINDOW);
  uint32_t held = 0;
  for (uint32_t i = 0; i < slots; ++i) {
    uint64_t word = s_.slots[i].load(std::memory_order_acquire);
    if (word != 0) freeIfAbandoned(static_cast<int>(i), word, now);
    if (s_.slots[i].load(std::memory_order_acquire) != 0) ++held;
  }
  // Slots above a window that was just halved are still in flight: they
  // count until released, so the halving holds at once.
  if (held >= window) return -1;
  const uint64_t mine = (uint64_t{pid} << 32) | slotTime(now);
  for (uint32_t i = 0; i < std::min(window, slots); ++i) {
    uint64_t expected = 0;
    if (s_.slots[i].compare_exchange_strong(expected, mine, std::memory_order_acq_rel, std::memory_order_relaxed)) {
      // Counting and claiming are two steps: claimers that counted at the
      // same time may together pass a window just halved (slots above it
      // still held). Count again with the claim made and give it back if
      // over: a race then costs a retry, never a handshake too many.
      if (inFlight() > s_.window.load(std::memory_order_acquire)) {
        releaseSlot(static_cast<int>(i), pid);
        return -1;
      }
      return static_cast<int>(i);
    }
  }
  return -1;
}

void AdaptivePacer::restampSlot(int slot, uint32_t pid, int64_t nowNs) noexcept {
  if (slot < 0 || slot >= static_cast<int>(PACER_MAX_WINDOW)) return;
  uint64_t word = s_.slots[slot].load(std::memory_order_acquire);
  if (word == 0 || slotPid(word) != pid) return;
  s_.slots[slot].compare_exchange_strong(word, (uint64_t{pid} << 32) | slotTime(nowUs(nowNs)),
                                         std::memory_order_acq_rel, std::memory_order_relaxed);
}

void AdaptivePacer::releaseSlot(int slot, uint32_t pid) noexcept {
  if (slot < 0 || slot >= static_cast<int>(PACER_MAX_WINDOW)) return;
  uint64_t word = s_.slots[slot].load(std::memory_order_acquire);
  // Freed as abandoned meanwhile (and perhaps claimed by another): not ours.
  if (word == 0 || slotPid(word) != pid) return;
  s_.slots[slot].compare_exchange_strong(word, 0, std::memory_order_acq_rel, std::memory_order_relaxed);
}

uint32_t AdaptivePacer::inFlight() const noexcept {
  uint32_t held = 0;
  for (uint32_t i = 0; i < std::min(s_.windowMax, PACER_MAX_WINDOW); ++i) {
    if (s_.slots[i].load(std::memory_order_relaxed) != 0) ++held;
  }
  return held;
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
  p.slotsFreed = s_.slotsFreed.load(std::memory_order_relaxed);
  p.window = window();
  p.inFlight = inFlight();
  const uint32_t reason = s_.lastReason.load(std::memory_order_relaxed);
  p.lastReason = reason <= static_cast<uint32_t>(ConnectSignal::SLOW) ? static_cast<ConnectSignal>(reason)
                                                                       : ConnectSignal::NONE;
  return p;
}

}  // namespace sshsoak
