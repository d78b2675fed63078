#include "shared/token_bucket.h"

#include <dirent.h>
#include <signal.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <limits>
#include <new>
#include <random>
#include <spdlog/spdlog.h>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "shared/clock.h"

namespace sshsoak {

namespace bip = boost::interprocess;

// A lock-based std::atomic would put a mutex into shared memory, which is
// exactly what a SIGKILLed agent could leave locked.
static_assert(std::atomic<int64_t>::is_always_lock_free, "the TAT must be a lock-free atomic");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "the magic must be a lock-free atomic");
static_assert(std::is_standard_layout_v<TokenBucketState>, "the segment layout is shared by processes");
static_assert(sizeof(TokenBucketState) == 1536, "a layout change must bump TokenBucketState::VERSION");

std::string_view reconnectPacingName(ReconnectPacing pacing) noexcept {
  return pacing == ReconnectPacing::ADAPTIVE ? "adaptive" : "fixed";
}

Acquire gcraTryAcquire(std::atomic<int64_t>& tatNs, int64_t intervalNs, uint32_t burst,
                       int64_t nowNs) noexcept {
  const int64_t limitNs = int64_t{burst - 1} * intervalNs;  // how far TAT may run ahead of now
  // The TAT is the only shared datum, so relaxed ordering would do; acq_rel
  // costs nothing more on x86, where any CAS is a full barrier.
  int64_t stored = tatNs.load(std::memory_order_relaxed);
  for (;;) {
    const int64_t tat = std::max(stored, nowNs);
    const int64_t aheadNs = tat - nowNs;
    if (aheadNs > limitNs) return Acquire{false, aheadNs - limitNs};
    // On failure `stored` is reloaded: another process took a token, go again.
    if (tatNs.compare_exchange_weak(stored, tat + intervalNs, std::memory_order_acq_rel,
                                    std::memory_order_relaxed)) {
      return Acquire{true, 0};
    }
  }
}

int64_t tokenIntervalNs(double ratePerSec) {
  if (!std::isfinite(ratePerSec) || ratePerSec <= 0) {
    throw std::invalid_argument("token bucket rate must be a finite number > 0 per second, got " +
                                std::to_string(ratePerSec));
  }
  const double ns = std::round(1e9 / ratePerSec);
  if (ns < 1) {
    throw std::invalid_argument("token bucket rate " + std::to_string(ratePerSec) +
                                "/s is above 1e9/s: the interval would be 0 ns");
  }
  if (ns > 1e18) {
    throw std::invalid_argument("token bucket rate " + std::to_string(ratePerSec) + "/s is too small");
  }
  return static_cast<int64_t>(ns);
}

namespace {

void checkParams(int64_t intervalNs, uint32_t burst, const std::string& context) {
  if (burst < 1) throw std::invalid_argument(context + ": burst must be >= 1");
  if (intervalNs <= 0) throw std::invalid_argument(context + ": interval must be > 0 ns");
  if (int64_t{burst - 1} > std::numeric_limits<int64_t>::max() / 4 / intervalNs) {
    throw std::invalid_argument(context + ": burst * interval overflows");
  }
}

void checkLaw(const PacerLaw& law, const std::string& context) {
  auto bad = [&](const char* what) { throw std::invalid_argument(context + ": adaptive pacing: " + what); };
  if (!(law.minRatePerSec >= PACER_MIN_RATE_PER_SEC && law.minRatePerSec <= law.maxRatePerSec &&
        law.maxRatePerSec <= PACER_MAX_RATE_PER_SEC)) {
    bad("the rate bounds must satisfy 0.001 <= min <= max <= 1048 per second");
  }
  if (!(law.decreaseFactor > 0 && law.decreaseFactor < 1)) bad("the decrease factor must be in (0, 1)");
  if (!(law.risePerOk >= 0 && law.probeRise >= 0 && law.slowFactor >= 1)) bad("rises >= 0, slow factor >= 1");
  if (law.holdoffUs < 0 || law.slowMarginUs < 0 || law.minWindowUs <= 0 || law.slotCheckAliveUs < 0 ||
      law.slotStaleUs <= 0) {
    bad("times must be >= 0");
  }
}

// POSIX shm names: one leading '/', no other, short enough for /dev/shm.
void checkName(const std::string& name) {
  const size_t start = (!name.empty() && name[0] == '/') ? 1 : 0;
  if (name.size() <= start || name.find('/', start) != std::string::npos ||
      name.size() - start > NAME_MAX) {
    throw std::invalid_argument("token bucket segment name '" + name +
                                "' is not a valid POSIX shm name (/name, no other '/')");
  }
}

uint64_t randomU64() {
  uint64_t v = 0;
  if (::getrandom(&v, sizeof v, GRND_NONBLOCK) == static_cast<ssize_t>(sizeof v)) return v;
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

}  // namespace

// --- TokenBucket ------------------------------------------------------------

TokenBucket::TokenBucket(bip::mapped_region region)
    : region_(std::move(region)), state_(static_cast<TokenBucketState*>(region_.get_address())) {}

TokenBucket::TokenBucket(TokenBucket&& other) noexcept
    : region_(std::move(other.region_)), state_(std::exchange(other.state_, nullptr)) {}

TokenBucket& TokenBucket::operator=(TokenBucket&& other) noexcept {
  if (this != &other) {
    region_ = std::move(other.region_);  // unmaps ours first
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

TokenBucket TokenBucket::open(const std::string& name) {
  checkName(name);
  const std::string what = "token bucket segment " + name;
  bip::mapped_region region;
  {
    // The shared_memory_object owns the only fd and closes it at the end of
    // this block; the mapping stays valid without it.
    bip::shared_memory_object shm;
    try {
      bip::shared_memory_object opened(bip::open_only, name.c_str(), bip::read_write);
      shm.swap(opened);
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() == bip::not_found_error) {
        throw std::runtime_error(what + ": no such shared memory segment (the supervisor that "
                                        "created it is gone, or the name is wrong)");
      }
      throw std::runtime_error(what + ": cannot open: " + e.what());
    }
    bip::offset_t size = 0;
    if (!shm.get_size(size)) throw std::runtime_error(what + ": cannot read its size");
    // Checked before mapping: touching past the end of a short segment is SIGBUS.
    if (size != static_cast<bip::offset_t>(sizeof(TokenBucketState))) {
      throw std::runtime_error(what + ": size " + std::to_string(size) + " bytes, expected " +
                               std::to_string(sizeof(TokenBucketState)) +
                               ": not an sshsoak token bucket of this version");
    }
    try {
      bip::mapped_region mapped(shm, bip::read_write, 0, sizeof(TokenBucketState));
      region.swap(mapped);
    } catch (const bip::interprocess_exception& e) {
      throw std::runtime_error(what + ": cannot map: " + e.what());
    }
  }
  auto* st = static_cast<TokenBucketState*>(region.get_address());
  // Acquire pairs with the creator's release store of magic, written last.
  const uint64_t magic = st->magic.load(std::memory_order_acquire);
  if (magic != TokenBucketState::MAGIC) {
    throw std::runtime_error(what + ": bad magic (not an sshsoak token bucket, or not initialised)");
  }
  if (st->version != TokenBucketState::VERSION) {
    throw std::runtime_error(what + ": layout version " + std::to_string(st->version) +
                             ", this program knows version " +
                             std::to_string(TokenBucketState::VERSION) +
                             " (supervisor and agent from different builds?)");
  }
  try {
    checkParams(st->intervalNs, st->burst, what);
    if (st->pacing == static_cast<uint32_t>(ReconnectPacing::ADAPTIVE)) checkLaw(st->law, what);
    else if (st->pacing != static_cast<uint32_t>(ReconnectPacing::FIXED)) throw std::invalid_argument(what + ": unknown pacing");
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string(e.what()) + " (corrupt header)");
  }
  return TokenBucket(std::move(region));
}

Acquire TokenBucket::tryAcquire(int64_t nowNs) noexcept {
  if (pacing() == ReconnectPacing::ADAPTIVE) {
    PacerAcquire a = pacer().tryAcquire(nowNs);
    return Acquire{a.granted, a.waitNs};
  }
  return gcraTryAcquire(state_->tatNs, state_->intervalNs, state_->burst, nowNs);
}

void TokenBucket::reportSuccess(int64_t latencyUs, int64_t nowNs) noexcept {
  if (pacing() == ReconnectPacing::ADAPTIVE) pacer().reportSuccess(latencyUs, nowNs);
}

void TokenBucket::reportFailure(ConnectSignal signal, int64_t nowNs) noexcept {
  if (pacing() == ReconnectPacing::ADAPTIVE) pacer().reportFailure(signal, nowNs);
}

int TokenBucket::claimHandshakeSlot(int64_t nowNs) noexcept {
  if (pacing() != ReconnectPacing::ADAPTIVE) return NO_SLOT_NEEDED;
  return pacer().claimSlot(static_cast<uint32_t>(::getpid()), nowNs);
}

void TokenBucket::restampHandshakeSlot(int slot, int64_t nowNs) noexcept {
  if (pacing() == ReconnectPacing::ADAPTIVE) pacer().restampSlot(slot, static_cast<uint32_t>(::getpid()), nowNs);
}

void TokenBucket::releaseHandshakeSlot(int slot) noexcept {
  if (pacing() == ReconnectPacing::ADAPTIVE) pacer().releaseSlot(slot, static_cast<uint32_t>(::getpid()));
}

double TokenBucket::currentRatePerSec() const noexcept {
  return pacing() == ReconnectPacing::ADAPTIVE ? pacer().ratePerSec() : state_->ratePerSec;
}

PacerSnapshot TokenBucket::pacerSnapshot() const noexcept {
  if (pacing() == ReconnectPacing::ADAPTIVE) return pacer().snapshot();
  PacerSnapshot p;
  p.ratePerSec = state_->ratePerSec;
  return p;
}

Acquire TokenBucket::tryAcquire() noexcept { return tryAcquire(monoNs()); }

int TokenBucket::pollTimeoutMs(const Acquire& a) noexcept {
  if (a.granted || a.waitNs <= 0) return 0;
  const int64_t ms = (a.waitNs + 999'999) / 1'000'000;
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

// --- TokenBucketSegment -----------------------------------------------------

TokenBucketSegment::TokenBucketSegment(std::string name, TokenBucket bucket)
    : name_(std::move(name)), bucket_(std::move(bucket)) {}

TokenBucketSegment::TokenBucketSegment(TokenBucketSegment&& other) noexcept
    : name_(std::exchange(other.name_, std::string())), bucket_(std::move(other.bucket_)) {}

TokenBucketSegment& TokenBucketSegment::operator=(TokenBucketSegment&& other) noexcept {
  if (this != &other) {
    removeNow();
    name_ = std::exchange(other.name_, std::string());
    bucket_ = std::move(other.bucket_);
  }
  return *this;
}

TokenBucketSegment::~TokenBucketSegment() { removeNow(); }

void TokenBucketSegment::removeNow() noexcept {
  if (name_.empty()) return;
  // Agents that still have it mapped keep working; the name is what goes.
  if (!bip::shared_memory_object::remove(name_.c_str())) {
    spdlog::warn("token bucket segment {}: could not remove it (already gone?)", name_);
  }
  name_.clear();
}

TokenBucketSegment TokenBucketSegment::create(const std::string& name, double ratePerSec, uint32_t burst,
                                              ReconnectPacing pacing, const PacerLaw& law) {
  checkName(name);
  const std::string what = "token bucket segment " + name;
  const int64_t intervalNs = tokenIntervalNs(ratePerSec);
  checkParams(intervalNs, burst, what);
  if (pacing == ReconnectPacing::ADAPTIVE) checkLaw(law, what);

  bip::shared_memory_object shm;
  try {
    // create_only is O_EXCL: never adopt a segment someone else prepared.
    // Boost fchmods after shm_open, so the mode is 0600 whatever the umask.
    bip::shared_memory_object created(bip::create_only, name.c_str(), bip::read_write,
                                      bip::permissions(0600));
    shm.swap(created);
  } catch (const bip::interprocess_exception& e) {
    throw std::runtime_error(what + ": cannot create: " + e.what());
  }
  // From here the name exists and is ours: remove it on every error path.
  struct RemoveOnError {
    const std::string& name;
    bool armed = true;
    ~RemoveOnError() {
      if (armed) bip::shared_memory_object::remove(name.c_str());
    }
  } guard{name};

  bip::mapped_region region;
  try {
    shm.truncate(sizeof(TokenBucketState));
    bip::mapped_region mapped(shm, bip::read_write, 0, sizeof(TokenBucketState));
    region.swap(mapped);
  } catch (const bip::interprocess_exception& e) {
    throw std::runtime_error(what + ": cannot size or map: " + e.what());
  }
  auto* st = new (region.get_address()) TokenBucketState{};
  st->version = TokenBucketState::VERSION;
  st->burst = burst;
  st->intervalNs = intervalNs;
  st->ratePerSec = ratePerSec;
  st->pacing = static_cast<uint32_t>(pacing);
  // A second before now: the pacer's time 0 means "never".
  st->baseNs = monoNs() - 1'000'000'000;
  st->law = law;
  // 0 is "long ago" on CLOCK_MONOTONIC: the full burst is available at once.
  st->tatNs.store(0, std::memory_order_relaxed);
  AdaptivePacer(st->pacer, st->law, burst, st->baseNs).init(ratePerSec);
  st->magic.store(TokenBucketState::MAGIC, std::memory_order_release);  // last: header complete

  TokenBucketSegment segment(name, TokenBucket(std::move(region)));
  guard.armed = false;
  return segment;
}

std::string TokenBucketSegment::makeName() {
  char buf[64];
  std::snprintf(buf, sizeof buf, "/%s%d-%016llx", TOKEN_BUCKET_NAME_PREFIX,
                static_cast<int>(::getpid()), static_cast<unsigned long long>(randomU64()));
  return buf;
}

std::vector<std::string> TokenBucketSegment::removeStale() {
  std::vector<std::string> removed;
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return removed;  // no /dev/shm: nothing of ours can be there
  const std::string prefix = TOKEN_BUCKET_NAME_PREFIX;
  while (dirent* e = ::readdir(dir)) {
    const std::string entry = e->d_name;
    if (entry.compare(0, prefix.size(), prefix) != 0) continue;
    // "<pid>-<anything>": digits, then a dash.
    size_t i = prefix.size();
    long pid = 0;
    while (i < entry.size() && entry[i] >= '0' && entry[i] <= '9' && pid < INT_MAX / 10) {
      pid = pid * 10 + (entry[i] - '0');
      ++i;
    }
    if (i == prefix.size() || i >= entry.size() || entry[i] != '-' || pid <= 0) continue;
    // EPERM means alive (someone else's); only ESRCH proves the run is over.
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    if (bip::shared_memory_object::remove(("/" + entry).c_str())) removed.push_back("/" + entry);
  }
  ::closedir(dir);
  return removed;
}

}  // namespace sshsoak
