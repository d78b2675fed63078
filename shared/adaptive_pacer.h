// Adaptive reconnect pacing (--reconnect-pacing adaptive; docs/design.md,
// "Reconnect storms"; docs/reference.md, "Reconnect pacing"): the shared
// bucket's rate is no longer a constant but follows what the agents see of
// the server, as TCP's congestion window follows acks and losses.
//
// The law (all of it in AdaptivePacer; parameters in PacerLaw):
//   - a fast success (connect + auth time within slowFactor x the recent
//     minimum, and within slowMargin of it) raises the rate by risePerOk per
//     second, as slow start adds one segment per ack: a rate R gives about R
//     successes a second, so the rate grows exponentially while the server
//     keeps up. Above the rate of the last decrease (wMax) the rise is
//     probeRise instead: a slow probe past the point that hurt before, as
//     CUBIC flattens around W_max.
//   - an overload sign halves the handshake window (below) and, unless it is
//     only a slow handshake, multiplies the rate by decreaseFactor: a reset
//     or close before the SSH banner, the MaxStartups pattern (closed right
//     after the banner, or sshd's "Exceeded MaxStartups" line), a timeout; a
//     connect + auth time far above its recent minimum (slow) narrows the
//     window only, since handshakes queued within the window are slow
//     because of the window.
//   - at most one decrease per holdoff: N agents that see the same overload
//     (the connects granted before the cut all report it) cut the rate once,
//     as TCP halves its window once per round trip. No rise during the
//     holdoff either: the reports of connects granted before the cut must not
//     undo it.
//   - the rate stays within [minRate, maxRate].
//   - after idle the rate is kept. (Before the handshake window it restarted
//     from the initial rate after 2 s without a token, as TCP restarts from
//     its initial window after idle, RFC 5681 4.1: a storm starting at a
//     high rate with the whole burst piled up more unauthenticated
//     connections than MaxStartups lets in. The window now bounds exactly
//     that, and the restart only made every storm climb from 10/s again.)
//   - at most `window` handshakes in flight (issue 16): a connect holds one
//     of the window's slots from before its token until its attempt ends (the
//     first exec's channel confirmed, or a failure): sshd counts a connection against
//     MaxStartups until its monitor has reaped the pre-auth child, a little
//     after the client has seen the authentication succeed. A rate alone
//     cannot bound what MaxStartups counts: by Little's law that is rate x
//     handshake time, and a storm that raises the rate also raises the
//     handshake time (both share the server's CPU), so a rate the server
//     took at 30 ms a handshake piles up 10 unauthenticated connections at
//     300 ms. The window starts at the burst (below MaxStartups' 10 by
//     default, as the burst already had to be), rises by one per fast
//     success up to the burst and halves on every overload sign, as TCP's
//     congestion window does (and TCP Vegas's on rising delay). A slot is one
//     word: the holder's pid and the claim's time (stamped again when the
//     token is granted). A holder that dies cannot keep it: any claimer
//     frees a slot whose pid is gone (checked once it is older than
//     slotCheckAliveUs) or that is older than slotStaleUs.
//
// Crash safety, as the fixed bucket's: the shared state is a few 64-bit
// atomics, each changed only by one CAS from one consistent value to
// another, never a lock. The rate and the bucket's theoretical arrival time
// share ONE word, so a rate change rescales the time already owed in the same
// CAS (otherwise a rise would first have to pay off the backlog at the old
// price). A decrease is two CASes (claim the holdoff, then cut the rate): an
// agent SIGKILLed between them loses that one decrease, the next overload
// report makes it. Counters only grow (fetch_add).
#pragma once

#include <atomic>
#include <cstdint>
#include <string_view>

namespace sshsoak {

// What one connect attempt says about the server's load.
enum class ConnectSignal : uint32_t {
  NONE = 0,                 // failed for a reason that says nothing about load (auth, host key, DNS)
  RESET_BEFORE_BANNER = 1,  // TCP refused or reset, or closed with nothing sent
  MAX_STARTUPS = 2,         // closed with no byte after the banner, or "Exceeded MaxStartups"
  TIMEOUT = 3,              // a connect step ran past its deadline
  SLOW = 4,                 // succeeded, but far slower than the recent minimum
};
// The `reason` of a pacer_rate line for a decrease: "overload: MaxStartups" ...
std::string_view overloadReason(ConnectSignal signal) noexcept;

struct PacerLaw {
  double minRatePerSec = 2.0;
  double maxRatePerSec = 1000.0;  // also the most the packed word holds (PACER_MAX_RATE_PER_SEC)
  double risePerOk = 2.0;         // per fast success, below wMax
  double probeRise = 0.25;        // per fast success, at or above wMax
  double decreaseFactor = 0.5;
  int64_t holdoffUs = 300'000;
  double slowFactor = 6.0;
  int64_t slowMarginUs = 200'000;
  int64_t minWindowUs = 30'000'000;  // the recent minimum is the lowest of the last window
  int64_t slotCheckAliveUs = 5'000'000;  // a slot older than this is freed if its pid is gone
  int64_t slotStaleUs = 300'000'000;     // and freed whatever its pid past this (the supervisor sets it)
};

// The most handshakes a window holds (the slots in the shared state).
inline constexpr uint32_t PACER_MAX_WINDOW = 128;

// The packed rate is in thousandths per second in 20 bits.
inline constexpr double PACER_MAX_RATE_PER_SEC = 1048.0;
inline constexpr double PACER_MIN_RATE_PER_SEC = 0.001;

// The shared part, in the segment (or any memory, for tests). Zeroed, then
// AdaptivePacer::init.
struct PacerState {
  // rate in 1/1000 per second (high 20 bits) | theoretical arrival time in
  // us since the base (low 44 bits: 203 days).
  alignas(64) std::atomic<uint64_t> rateTat;
  // the rate when the last decrease was made (high 20 bits) | its time in us (low 44)
  alignas(64) std::atomic<uint64_t> lastDecrease;
  // the same for the last narrowing of the handshake window (its holdoff)
  std::atomic<uint64_t> lastNarrow;
  // the window's start in us (high 44 bits) | the lowest connect time in it, in 16 us units (low 20 bits: 16.7 s)
  std::atomic<uint64_t> minLatency;
  std::atomic<uint32_t> lastReason;  // a ConnectSignal: why the last decrease was made
  // Counters since the start, for the supervisor's pacer_rate lines.
  alignas(64) std::atomic<uint64_t> ok;
  std::atomic<uint64_t> slow;
  std::atomic<uint64_t> resetsBeforeBanner;
  std::atomic<uint64_t> maxStartups;
  std::atomic<uint64_t> timeouts;
  std::atomic<uint64_t> increases;
  std::atomic<uint64_t> decreases;
  std::atomic<uint64_t> slotsFreed;  // slots freed for a holder that died or never released
  // The handshake window: how many may be in flight now (1..windowMax), and
  // the slots, each 0 (free) or pid (high 32 bits) | claim time in ms since
  // the base, + 1 (low 32 bits: 49 days).
  alignas(64) std::atomic<uint32_t> window;
  uint32_t windowMax;  // written by init only: min(burst, PACER_MAX_WINDOW)
  alignas(64) std::atomic<uint64_t> slots[PACER_MAX_WINDOW];
};

struct PacerSnapshot {
  double ratePerSec = 0;
  uint64_t ok = 0, slow = 0, resetsBeforeBanner = 0, maxStartups = 0, timeouts = 0;
  uint64_t increases = 0, decreases = 0, slotsFreed = 0;
  ConnectSignal lastReason = ConnectSignal::NONE;
  uint32_t window = 0;    // handshakes allowed in flight now
  uint32_t inFlight = 0;  // slots held now
};

struct PacerAcquire {
  bool granted = false;
  int64_t waitNs = 0;
};

// A view on one PacerState; cheap to make. Every call takes the time, on
// CLOCK_MONOTONIC in ns, so tests inject it. baseNs must be at least a
// second before any time given (the supervisor takes its creation time minus
// a second): time 0 in the packed words means "never".
class AdaptivePacer {
 public:
  AdaptivePacer(PacerState& state, const PacerLaw& law, uint32_t burst, int64_t baseNs) noexcept
      : s_(state), law_(law), burst_(burst), baseNs_(baseNs) {}

  // Once, by the creator, before anyone else sees the state.
  void init(double initialRatePerSec) noexcept;

  PacerAcquire tryAcquire(int64_t nowNs) noexcept;
  // One connect attempt's outcome: a success with its connect + auth time,
  // or a failure's signal (NONE changes nothing).
  void reportSuccess(int64_t latencyUs, int64_t nowNs) noexcept;
  void reportFailure(ConnectSignal signal, int64_t nowNs) noexcept;

  // A handshake slot for process `pid` if fewer than the window are held:
  // its index, or -1 (ask again shortly). Frees on the way the slots of
  // holders that are gone. Lock-free: one CAS claims, one CAS releases.
  int claimSlot(uint32_t pid, int64_t nowNs) noexcept;
  // Frees slot `slot` if `pid` still holds it (it may have been freed as
  // stale meanwhile); a slot < 0 is ignored.
  void releaseSlot(int slot, uint32_t pid) noexcept;
  // The slot's claim time becomes now (when the token is granted: the wait
  // for it must not count towards the slot's age).
  void restampSlot(int slot, uint32_t pid, int64_t nowNs) noexcept;
  uint32_t inFlight() const noexcept;
  uint32_t window() const noexcept { return s_.window.load(std::memory_order_relaxed); }

  double ratePerSec() const noexcept;
  PacerSnapshot snapshot() const noexcept;

  // The law, alone (pure): used by the CAS loops and by tests.
  static uint32_t encodeRate(double ratePerSec) noexcept;
  static double decodeRate(uint32_t milli) noexcept { return milli / 1000.0; }

 private:
  int64_t nowUs(int64_t nowNs) const noexcept;
  // True if this call made the decrease (not held off by an earlier one).
  bool decrease(ConnectSignal why, int64_t nowUs) noexcept;
  // Claims `word`'s holdoff (rate | time of the last cut) for a cut now;
  // false if the last cut was less than a holdoff ago.
  bool claimHoldoff(std::atomic<uint64_t>& word, int64_t nowUs) noexcept;
  void rise(int64_t nowUs) noexcept;
  // CAS the rate to f(rate), rescaling the time owed; false if unchanged.
  template <typename F>
  bool changeRate(F&& f, int64_t nowUs) noexcept;
  // Updates the windowed minimum, returns it (us).
  int64_t recentMinUs(int64_t latencyUs, int64_t nowUs) noexcept;
  // CAS the window to f(window); true if it changed.
  template <typename F>
  bool changeWindow(F&& f) noexcept;
  // Frees the slot holding `word` if its holder is gone or it is stale.
  void freeIfAbandoned(int slot, uint64_t word, int64_t nowUs) noexcept;

  PacerState& s_;
  const PacerLaw& law_;
  uint32_t burst_;
  int64_t baseNs_;
};

}  // namespace sshsoak
