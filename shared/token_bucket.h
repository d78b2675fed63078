// The reconnect token bucket shared by all agents of one run (docs/design.md,
// "Reconnect storms", F5).
//
// How it works: GCRA (the "generic cell rate algorithm" of ATM, as used by
// e.g. redis-cell). The whole state is one 64-bit "theoretical arrival time"
// (TAT) in ns on CLOCK_MONOTONIC, which is system-wide, so every process reads
// the same clock. Taking a token is a CAS loop on that one atomic:
//
//   tat = max(stored, now)
//   if tat - now > (burst - 1) * interval:  denied, wait tat - now - (burst - 1) * interval
//   else CAS(stored -> tat + interval):     granted
//
// There is no lock anywhere: an agent SIGKILLed at any instant either did its
// CAS or did not, and cannot leave the bucket blocked for the others. In any
// window of T ns at most burst + floor(T / interval) tokens are granted.
//
// Owner side: the supervisor creates the segment (TokenBucketSegment, RAII,
// mode 0600, per-run name) and removes stale ones of dead runs at start.
// Client side: each agent opens it by name (TokenBucket::open) and calls
// tryAcquire(); the API never sleeps: the agent waits in its own poll loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/interprocess/mapped_region.hpp>

#include "shared/adaptive_pacer.h"

namespace sshsoak {

// Defaults: 10 connects per second across all agents, at most 8 at once.
// sshd's MaxStartups (default 10:30:100) starts refusing connections at 10
// concurrent unauthenticated ones, so the default burst must stay below 10;
// 8 leaves room for two other clients. Measured (docs/benchmarks.md): with
// 5/5 a drop of 10 sessions had p95 1.1 s and 100 sessions took 19 s to come
// back; with 10/8, 0.53 s and 9.2 s, and still 0 MaxStartups drops.
inline constexpr double TOKEN_BUCKET_DEFAULT_RATE_PER_SEC = 10.0;
inline constexpr uint32_t TOKEN_BUCKET_DEFAULT_BURST = 8;
inline constexpr uint32_t SSHD_MAX_STARTUPS_START = 10;
static_assert(TOKEN_BUCKET_DEFAULT_BURST < SSHD_MAX_STARTUPS_START,
              "the default burst must stay below sshd's MaxStartups start");

// Segment names are "/sshsoak-<supervisor pid>-<random>"; removeStale() keys
// on the pid.
inline constexpr const char* TOKEN_BUCKET_NAME_PREFIX = "sshsoak-";

// --reconnect-pacing: a constant rate, or one that follows the server
// (shared/adaptive_pacer.h).
enum class ReconnectPacing : uint32_t { FIXED = 0, ADAPTIVE = 1 };
std::string_view reconnectPacingName(ReconnectPacing pacing) noexcept;
// Still fixed (issue 16): with its handshake window adaptive brings 100
// dropped sessions back 3-4x faster than fixed with 0 MaxStartups drops
// (docs/benchmarks.md, "Reconnect storms with the handshake window"), but a
// blackhole's timeouts narrow its window to 1, so a long outage's attempts
// are made one at a time and F2's give-up comes far later than
// --max-reconnect-attempts x timeout (docs/reference.md, "Reconnect pacing").
inline constexpr ReconnectPacing DEFAULT_RECONNECT_PACING = ReconnectPacing::FIXED;

struct Acquire {
  bool granted = false;
  int64_t waitNs = 0;  // when denied: how long until a token is due (> 0); 0 when granted
};

// The GCRA step on any atomic TAT, with the clock injected. Lock-free.
// Callers guarantee intervalNs > 0, burst >= 1, (burst - 1) * intervalNs fits.
Acquire gcraTryAcquire(std::atomic<int64_t>& tatNs, int64_t intervalNs, uint32_t burst,
                       int64_t nowNs) noexcept;

// Interval between tokens for a rate; throws std::invalid_argument on a rate
// that is not finite and > 0, or that rounds to an interval of 0 ns.
int64_t tokenIntervalNs(double ratePerSec);

// Layout of the segment. Written once by the creator, magic last; only tatNs
// (fixed pacing) or `pacer` (adaptive) changes afterwards. A layout change
// bumps VERSION (2: the adaptive pacer; 3: its handshake window).
struct TokenBucketState {
  static constexpr uint64_t MAGIC = 0x62746b6f73687373ULL;  // "sshsoktb" in memory (little-endian)
  static constexpr uint32_t VERSION = 3;

  std::atomic<uint64_t> magic;
  uint32_t version;
  uint32_t burst;
  int64_t intervalNs;
  double ratePerSec;  // as given to create(); intervalNs is what fixed pacing enforces
  uint32_t pacing;    // a ReconnectPacing
  int64_t baseNs;     // adaptive: the zero of the pacer's packed times (creation - 1 s)
  PacerLaw law;       // adaptive: the law every agent applies
  // On its own cache line: the CAS target must not share one with the
  // read-only header that every acquire also reads.
  alignas(64) std::atomic<int64_t> tatNs;
  PacerState pacer;  // adaptive only; its words sit on cache lines of their own
};

// Client view: a read-write mapping of an existing segment. Holds no fd.
class TokenBucket {
 public:
  // Maps the segment `name` (as made by TokenBucketSegment::makeName()).
  // Throws std::runtime_error naming the segment if it is missing, has the
  // wrong size, or carries a wrong magic, version or header.
  static TokenBucket open(const std::string& name);

  TokenBucket(TokenBucket&& other) noexcept;
  TokenBucket& operator=(TokenBucket&& other) noexcept;
  TokenBucket(const TokenBucket&) = delete;
  TokenBucket& operator=(const TokenBucket&) = delete;

  // Fixed pacing: GCRA at the header's interval; adaptive: at the pacer's rate.
  Acquire tryAcquire(int64_t nowNs) noexcept;
  Acquire tryAcquire() noexcept;  // now = monoNs()

  // What one connect attempt said of the server (adaptive pacing feeds on
  // it; fixed pacing ignores it). latencyUs: connect + authentication.
  void reportSuccess(int64_t latencyUs, int64_t nowNs) noexcept;
  void reportFailure(ConnectSignal signal, int64_t nowNs) noexcept;

  // Adaptive pacing: a handshake slot for this process, held from before the
  // token until the first exec's channel is confirmed or the attempt failed
  // (AdaptivePacer::claimSlot): its index, or NO_SLOT_FREE (ask again
  // shortly). Fixed pacing bounds no handshakes: always NO_SLOT_NEEDED.
  static constexpr int NO_SLOT_FREE = -1;
  static constexpr int NO_SLOT_NEEDED = -2;
  int claimHandshakeSlot(int64_t nowNs) noexcept;
  // When the token is granted: the slot's age counts from then.
  void restampHandshakeSlot(int slot, int64_t nowNs) noexcept;
  void releaseHandshakeSlot(int slot) noexcept;

  ReconnectPacing pacing() const noexcept { return static_cast<ReconnectPacing>(state_->pacing); }
  // Fixed: the header's; adaptive: the current rate (as the pacer holds it).
  double currentRatePerSec() const noexcept;
  // Adaptive: the rate and the counters; fixed: the constant rate, no counts.
  PacerSnapshot pacerSnapshot() const noexcept;

  // How long to poll() before asking again: 0 if granted, else waitNs rounded
  // UP to whole ms so the agent does not wake just before the token and spin.
  static int pollTimeoutMs(const Acquire& a) noexcept;

  uint32_t burst() const noexcept { return state_->burst; }
  int64_t intervalNs() const noexcept { return state_->intervalNs; }
  double ratePerSec() const noexcept { return state_->ratePerSec; }

 private:
  friend class TokenBucketSegment;
  explicit TokenBucket(boost::interprocess::mapped_region region);
  AdaptivePacer pacer() const noexcept { return AdaptivePacer(state_->pacer, state_->law, state_->burst, state_->baseNs); }

  boost::interprocess::mapped_region region_;
  TokenBucketState* state_ = nullptr;
};

// Owner side (supervisor): creates the segment and removes it when destroyed.
// Move-only; the destructor never throws.
class TokenBucketSegment {
 public:
  // Creates `name` exclusively (fails if it exists: never adopts a segment
  // someone else prepared) with mode 0600 regardless of umask. Throws
  // std::runtime_error naming the segment; nothing is left in /dev/shm then.
  // Adaptive pacing starts at ratePerSec (clamped to the law's bounds).
  static TokenBucketSegment create(const std::string& name,
                                   double ratePerSec = TOKEN_BUCKET_DEFAULT_RATE_PER_SEC,
                                   uint32_t burst = TOKEN_BUCKET_DEFAULT_BURST,
                                   ReconnectPacing pacing = ReconnectPacing::FIXED,
                                   const PacerLaw& law = PacerLaw{});

  // "/sshsoak-<pid>-<16 hex digits from getrandom>".
  static std::string makeName();

  // Removes /dev/shm/sshsoak-<pid>-* whose pid is gone (kill(pid, 0) gives
  // ESRCH). Returns the names removed. A pid that was reused keeps its stale
  // segment alive until that process is gone too: harmless, it is tiny.
  static std::vector<std::string> removeStale();

  TokenBucketSegment(TokenBucketSegment&& other) noexcept;
  TokenBucketSegment& operator=(TokenBucketSegment&& other) noexcept;
  TokenBucketSegment(const TokenBucketSegment&) = delete;
  TokenBucketSegment& operator=(const TokenBucketSegment&) = delete;
  ~TokenBucketSegment();

  const std::string& name() const noexcept { return name_; }
  // The owner's own view (the supervisor may take tokens too, e.g. for restarts).
  TokenBucket& bucket() noexcept { return bucket_; }

 private:
  TokenBucketSegment(std::string name, TokenBucket bucket);
  void removeNow() noexcept;

  std::string name_;  // empty once moved from
  TokenBucket bucket_;
};

}  // namespace sshsoak
