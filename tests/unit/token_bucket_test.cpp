#include "shared/token_bucket.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shared/clock.h"
#include "shared/fd.h"

using namespace sshsoak;

namespace {

constexpr int64_t MS = 1'000'000;
constexpr int64_t SEC = 1'000'000'000;

bool shmExists(const std::string& name) {
  struct stat st {};
  return ::stat(("/dev/shm" + name).c_str(), &st) == 0;
}

// Every /dev/shm entry named after this process: what a test must not leave.
std::vector<std::string> ownSegments() {
  std::vector<std::string> out;
  const std::string prefix = std::string(TOKEN_BUCKET_NAME_PREFIX) + std::to_string(::getpid()) + "-";
  DIR* d = ::opendir("/dev/shm");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) out.push_back(e->d_name);
  }
  ::closedir(d);
  return out;
}

// A raw POSIX shm object (not made by TokenBucketSegment): for garbage and
// stale-run segments. Unlinked on scope exit unless someone else did.
struct RawShm {
  std::string name;
  RawShm(std::string n, size_t size, unsigned char fill) : name(std::move(n)) {
    UniqueFd fd(::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) throwErrno("shm_open " + name);
    sysCall("ftruncate", [&] { return ::ftruncate(fd.get(), static_cast<off_t>(size)); });
    if (size > 0) {
      void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
      if (p == MAP_FAILED) throwErrno("mmap");
      std::memset(p, fill, size);
      ::munmap(p, size);
    }
  }
  ~RawShm() { ::shm_unlink(name.c_str()); }
};

// Checks GCRA's guarantee on a set of grant times: for every pair of grants
// i <= j (sorted by time), grants in [t_i, t_j] <= burst + (t_j - t_i) / I,
// i.e. (j*I - t_j) - (i*I - t_i) <= (burst - 1) * I. O(n) with a running min.
// Returns the worst (count - bound) over all windows, in tokens (<= 0 is good).
double worstExcessTokens(std::vector<int64_t> ts, int64_t intervalNs, uint32_t burst) {
  std::sort(ts.begin(), ts.end());
  if (ts.empty()) return -double(burst);
  int64_t minG = std::numeric_limits<int64_t>::max();
  int64_t worst = std::numeric_limits<int64_t>::min();
  for (size_t k = 0; k < ts.size(); ++k) {
    const int64_t g = static_cast<int64_t>(k) * intervalNs - ts[k];
    minG = std::min(minG, g);
    worst = std::max(worst, g - minG);
  }
  // count - bound = ((g_j - g_i) + I) / I - burst
  return double(worst + intervalNs) / double(intervalNs) - burst;
}

class TokenBucketTest : public ::testing::Test {
 protected:
  void SetUp() override { fdsBefore_ = countOpenFds(); }
  void TearDown() override {
    EXPECT_EQ(countOpenFds(), fdsBefore_) << "fds leaked";
    auto left = ownSegments();
    EXPECT_TRUE(left.empty()) << "left in /dev/shm: " << (left.empty() ? "" : left.front());
    for (auto& n : left) ::shm_unlink(("/" + n).c_str());
  }
  int fdsBefore_ = 0;
};

}  // namespace

// --- GCRA math on an injected clock ------------------------------------------

TEST(Gcra, BurstAtOnceThenOnePerInterval) {
  std::atomic<int64_t> tat{0};
  const int64_t I = 100 * MS;  // 10 tokens/s
  const int64_t t0 = 1000 * SEC;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(gcraTryAcquire(tat, I, 5, t0).granted) << i;
  Acquire a = gcraTryAcquire(tat, I, 5, t0);
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.waitNs, I);
  // The next token is due exactly after waitNs, not a ns earlier.
  a = gcraTryAcquire(tat, I, 5, t0 + I - 1);
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.waitNs, 1);
  EXPECT_TRUE(gcraTryAcquire(tat, I, 5, t0 + I).granted);
  a = gcraTryAcquire(tat, I, 5, t0 + I);
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.waitNs, I);
  // Steady state: one per interval.
  for (int k = 2; k < 20; ++k) {
    EXPECT_TRUE(gcraTryAcquire(tat, I, 5, t0 + k * I).granted) << k;
    EXPECT_FALSE(gcraTryAcquire(tat, I, 5, t0 + k * I).granted) << k;
  }
  // A long idle time refills to burst, and no further.
  const int64_t t1 = t0 + 3600 * SEC;
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(gcraTryAcquire(tat, I, 5, t1).granted) << i;
  EXPECT_FALSE(gcraTryAcquire(tat, I, 5, t1).granted);
}

TEST(Gcra, BurstOfOneIsAPlainRateLimit) {
  std::atomic<int64_t> tat{0};
  EXPECT_TRUE(gcraTryAcquire(tat, 10, 1, 100).granted);
  Acquire a = gcraTryAcquire(tat, 10, 1, 100);
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.waitNs, 10);
  EXPECT_TRUE(gcraTryAcquire(tat, 10, 1, 110).granted);
}

TEST(Gcra, NeverMoreThanBurstPlusRateTimesWindowOnRandomClock) {
  std::mt19937_64 rng(12345);
  for (uint32_t burst : {1u, 3u, 5u, 9u}) {
    std::atomic<int64_t> tat{0};
    const int64_t I = 7 * MS + 13;  // not a round number on purpose
    int64_t now = 50 * SEC;
    std::vector<int64_t> grants;
    int64_t lastWait = 0;
    for (int step = 0; step < 20'000; ++step) {
      // Clock moves by 0 .. 2 intervals, sometimes jumps (idle agent).
      now += (rng() % 8 == 0) ? int64_t(rng() % (20 * I)) : int64_t(rng() % (2 * I));
      const int tries = 1 + int(rng() % 6);
      for (int t = 0; t < tries; ++t) {
        Acquire a = gcraTryAcquire(tat, I, burst, now);
        if (a.granted) {
          grants.push_back(now);
        } else {
          ASSERT_GT(a.waitNs, 0);
          ASSERT_LE(a.waitNs, I);  // one process alone never waits more than one interval
          lastWait = a.waitNs;
        }
      }
    }
    EXPECT_GT(lastWait, 0);
    const double excess = worstExcessTokens(grants, I, burst);
    EXPECT_LE(excess, 0.0) << "burst " << burst;
    // Tight: with eager callers some window actually reaches the bound.
    EXPECT_GT(excess, -1.0) << "burst " << burst;
  }
}

TEST(Gcra, ThreadsHammeringOneAtomicStayWithinBound) {
  // The same CAS loop between threads, so ThreadSanitizer sees it too (it
  // cannot follow atomics across processes).
  std::atomic<int64_t> tat{0};
  const int64_t I = 200'000;  // 5000/s
  const uint32_t burst = 5;
  constexpr int THREADS = 4;
  std::vector<std::vector<int64_t>> got(THREADS);
  const int64_t end = monoNs() + 300 * MS;
  std::vector<std::thread> threads;
  for (int t = 0; t < THREADS; ++t) {
    threads.emplace_back([&, t] {
      while (true) {
        const int64_t now = monoNs();
        if (now > end) break;
        if (gcraTryAcquire(tat, I, burst, now).granted) got[t].push_back(now);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<int64_t> all;
  for (auto& v : got) all.insert(all.end(), v.begin(), v.end());
  ASSERT_FALSE(all.empty());
  EXPECT_LE(worstExcessTokens(all, I, burst), 0.0);
}

// --- Segment: acquire through shared memory -----------------------------------

TEST_F(TokenBucketTest, AcquireThroughSegmentAndOpenedView) {
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 10.0, 3);
  auto view = TokenBucket::open(seg.name());
  EXPECT_EQ(view.burst(), 3u);
  EXPECT_EQ(view.intervalNs(), 100 * MS);
  EXPECT_DOUBLE_EQ(view.ratePerSec(), 10.0);
  const int64_t t0 = 77 * SEC;
  // Owner and client share one budget.
  EXPECT_TRUE(seg.bucket().tryAcquire(t0).granted);
  EXPECT_TRUE(view.tryAcquire(t0).granted);
  EXPECT_TRUE(seg.bucket().tryAcquire(t0).granted);
  Acquire a = view.tryAcquire(t0 + 30 * MS);
  EXPECT_FALSE(a.granted);
  EXPECT_EQ(a.waitNs, 70 * MS);
  EXPECT_EQ(TokenBucket::pollTimeoutMs(a), 70);
  EXPECT_FALSE(seg.bucket().tryAcquire(t0 + 30 * MS + a.waitNs - 1).granted);
  EXPECT_TRUE(seg.bucket().tryAcquire(t0 + 30 * MS + a.waitNs).granted);
  // The real-clock overload works on the same state.
  auto fresh = TokenBucketSegment::create(TokenBucketSegment::makeName());
  EXPECT_EQ(fresh.bucket().burst(), TOKEN_BUCKET_DEFAULT_BURST);
  for (uint32_t i = 0; i < TOKEN_BUCKET_DEFAULT_BURST; ++i) EXPECT_TRUE(fresh.bucket().tryAcquire().granted);
  a = fresh.bucket().tryAcquire();
  EXPECT_FALSE(a.granted);
  EXPECT_GT(a.waitNs, 0);
  EXPECT_LE(a.waitNs, fresh.bucket().intervalNs());
}

TEST(TokenBucket, PollTimeoutRoundsUpToWholeMs) {
  EXPECT_EQ(TokenBucket::pollTimeoutMs({true, 0}), 0);
  EXPECT_EQ(TokenBucket::pollTimeoutMs({false, 1}), 1);
  EXPECT_EQ(TokenBucket::pollTimeoutMs({false, MS}), 1);
  EXPECT_EQ(TokenBucket::pollTimeoutMs({false, MS + 1}), 2);
  EXPECT_EQ(TokenBucket::pollTimeoutMs({false, std::numeric_limits<int64_t>::max() / 2}),
            std::numeric_limits<int>::max());
}

TEST(TokenBucket, DefaultBurstStaysBelowSshdMaxStartups) {
  EXPECT_LT(TOKEN_BUCKET_DEFAULT_BURST, SSHD_MAX_STARTUPS_START);
  EXPECT_EQ(tokenIntervalNs(TOKEN_BUCKET_DEFAULT_RATE_PER_SEC), 100 * MS);
}

// --- Segment hygiene ------------------------------------------------------------

TEST_F(TokenBucketTest, CreatedWithMode0600WhateverTheUmask) {
  for (mode_t mask : {mode_t{0}, mode_t{022}, mode_t{077}, mode_t{0277}}) {
    const mode_t old = ::umask(mask);
    auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName());
    ::umask(old);
    struct stat st {};
    ASSERT_EQ(::stat(("/dev/shm" + seg.name()).c_str(), &st), 0) << seg.name();
    EXPECT_EQ(st.st_mode & 07777, 0600u) << "umask " << std::oct << mask;
    EXPECT_EQ(st.st_uid, ::geteuid());
  }
}

TEST_F(TokenBucketTest, NameIsPerRunAndCarriesThePid) {
  const std::string a = TokenBucketSegment::makeName(), b = TokenBucketSegment::makeName();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("/sshsoak-" + std::to_string(::getpid()) + "-", 0), 0u) << a;
}

TEST_F(TokenBucketTest, DestructorRemovesSegment) {
  std::string name;
  {
    auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName());
    name = seg.name();
    EXPECT_TRUE(shmExists(name));
  }
  EXPECT_FALSE(shmExists(name));
}

TEST_F(TokenBucketTest, ExceptionPathRemovesSegment) {
  const std::string name = TokenBucketSegment::makeName();
  try {
    auto seg = TokenBucketSegment::create(name);
    ASSERT_TRUE(shmExists(name));
    throw std::runtime_error("supervisor failed later in startup");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(shmExists(name));
}

TEST_F(TokenBucketTest, MoveTransfersOwnershipOnce) {
  auto a = TokenBucketSegment::create(TokenBucketSegment::makeName());
  const std::string name = a.name();
  TokenBucketSegment b = std::move(a);
  EXPECT_EQ(b.name(), name);
  EXPECT_TRUE(b.bucket().tryAcquire().granted);
  auto c = TokenBucketSegment::create(TokenBucketSegment::makeName());
  const std::string other = c.name();
  c = std::move(b);  // drops (removes) c's own segment
  EXPECT_FALSE(shmExists(other));
  EXPECT_TRUE(shmExists(name));
}

TEST_F(TokenBucketTest, CreateRefusesExistingNameAndLeavesItAlone) {
  auto first = TokenBucketSegment::create(TokenBucketSegment::makeName());
  try {
    auto second = TokenBucketSegment::create(first.name());
    FAIL() << "created over an existing segment";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(first.name()), std::string::npos) << e.what();
  }
  EXPECT_TRUE(shmExists(first.name()));
  EXPECT_NO_THROW(TokenBucket::open(first.name()));
}

TEST_F(TokenBucketTest, CreateRejectsBadParametersBeforeCreatingAnything) {
  const std::string name = TokenBucketSegment::makeName();
  EXPECT_THROW(TokenBucketSegment::create(name, 0.0, 5), std::invalid_argument);
  EXPECT_THROW(TokenBucketSegment::create(name, -1.0, 5), std::invalid_argument);
  EXPECT_THROW(TokenBucketSegment::create(name, std::numeric_limits<double>::quiet_NaN(), 5),
               std::invalid_argument);
  EXPECT_THROW(TokenBucketSegment::create(name, 3e9, 5), std::invalid_argument);
  EXPECT_THROW(TokenBucketSegment::create(name, 5.0, 0), std::invalid_argument);
  EXPECT_THROW(TokenBucketSegment::create("/a/b", 5.0, 5), std::invalid_argument);
  EXPECT_THROW(TokenBucketSegment::create("", 5.0, 5), std::invalid_argument);
  EXPECT_FALSE(shmExists(name));
}

TEST_F(TokenBucketTest, OpenMissingSegmentSaysSo) {
  const std::string name = TokenBucketSegment::makeName();
  try {
    TokenBucket::open(name);
    FAIL() << "opened a missing segment";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
    EXPECT_NE(msg.find("no such shared memory segment"), std::string::npos) << msg;
  }
}

TEST_F(TokenBucketTest, OpenWrongSizeOrGarbageSaysSo) {
  auto expectOpenError = [](const std::string& name, const std::string& needle) {
    try {
      TokenBucket::open(name);
      ADD_FAILURE() << "opened " << name;
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(name), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  {
    RawShm empty(TokenBucketSegment::makeName(), 0, 0);  // created, never sized (SIGBUS bait)
    expectOpenError(empty.name, "size 0 bytes");
  }
  {
    RawShm small(TokenBucketSegment::makeName(), 64, 0xab);
    expectOpenError(small.name, "size 64 bytes");
  }
  {
    RawShm big(TokenBucketSegment::makeName(), 4096, 0);
    expectOpenError(big.name, "size 4096 bytes");
  }
  {
    RawShm garbage(TokenBucketSegment::makeName(), sizeof(TokenBucketState), 0x5a);
    expectOpenError(garbage.name, "bad magic");
  }
  {
    // Right magic, other version: e.g. an agent from another build.
    auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName());
    UniqueFd fd(::shm_open(seg.name().c_str(), O_RDWR | O_CLOEXEC, 0));
    ASSERT_TRUE(fd);
    void* p = ::mmap(nullptr, sizeof(TokenBucketState), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(p, MAP_FAILED);
    static_cast<TokenBucketState*>(p)->version = TokenBucketState::VERSION + 1;
    expectOpenError(seg.name(), "layout version");
    static_cast<TokenBucketState*>(p)->version = TokenBucketState::VERSION;
    static_cast<TokenBucketState*>(p)->burst = 0;
    expectOpenError(seg.name(), "corrupt header");
    ::munmap(p, sizeof(TokenBucketState));
  }
}

TEST_F(TokenBucketTest, MappingsHoldNoFd) {
  const int before = countOpenFds();
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName());
  EXPECT_EQ(countOpenFds(), before) << "create() kept an fd";
  std::vector<TokenBucket> views;
  for (int i = 0; i < 10; ++i) views.push_back(TokenBucket::open(seg.name()));
  EXPECT_EQ(countOpenFds(), before) << "open() kept an fd";
  for (auto& v : views) EXPECT_EQ(v.burst(), TOKEN_BUCKET_DEFAULT_BURST);
  try {
    TokenBucket::open(TokenBucketSegment::makeName());
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(countOpenFds(), before) << "a failed open() kept an fd";
}

TEST_F(TokenBucketTest, RemoveStaleRemovesDeadRunsKeepsLiveOnes) {
  // A pid that is certainly dead: a child we started and reaped.
  const pid_t dead = ::fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(dead, &status, 0), dead);

  const std::string deadName = "/sshsoak-" + std::to_string(dead) + "-deadbeef00000000";
  RawShm stale(deadName, sizeof(TokenBucketState), 0);
  auto live = TokenBucketSegment::create(TokenBucketSegment::makeName());  // our own pid: alive
  RawShm notOurs("/sshsoak-notapid-" + std::to_string(::getpid()), 16, 0);  // not <pid>-*: ignored

  const auto removed = TokenBucketSegment::removeStale();
  EXPECT_NE(std::find(removed.begin(), removed.end(), deadName), removed.end());
  EXPECT_EQ(std::find(removed.begin(), removed.end(), live.name()), removed.end());
  EXPECT_FALSE(shmExists(deadName));
  EXPECT_TRUE(shmExists(live.name()));
  EXPECT_TRUE(shmExists(notOurs.name));
}

// --- Several processes, one SIGKILLed mid-way ----------------------------------

namespace {

constexpr int CHILDREN = 4;
constexpr uint32_t MAX_GRANTS_PER_CHILD = 1 << 16;

// In an anonymous MAP_SHARED mapping made before fork: each child writes only
// its own slot, the parent reads them all.
struct GrantLog {
  std::atomic<int> stop;
  struct Slot {
    std::atomic<uint32_t> count;  // published after the timestamp is written
    std::atomic<uint64_t> denied;
    int64_t ts[MAX_GRANTS_PER_CHILD];
  } slots[CHILDREN];
};

[[noreturn]] void hammer(const std::string& name, GrantLog* log, int slot) {
  int rc = 0;
  try {
    auto bucket = TokenBucket::open(name);
    auto& s = log->slots[slot];
    while (log->stop.load(std::memory_order_acquire) == 0) {
      const int64_t now = monoNs();
      // The timestamp recorded is the `now` the GCRA decision was made with.
      if (bucket.tryAcquire(now).granted) {
        const uint32_t n = s.count.load(std::memory_order_relaxed);
        if (n == MAX_GRANTS_PER_CHILD) break;
        s.ts[n] = now;
        s.count.store(n + 1, std::memory_order_release);
      } else {
        s.denied.fetch_add(1, std::memory_order_relaxed);
        ::sched_yield();  // 4 hammering children on 2 cores: let the others in
      }
    }
  } catch (...) {
    rc = 2;
  }
  ::_exit(rc);
}

// Kills (by pid) and reaps any child still running if the test bails out.
struct Children {
  std::vector<pid_t> pids;
  ~Children() {
    for (pid_t p : pids) {
      if (p > 0) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
      }
    }
  }
};

}  // namespace

TEST_F(TokenBucketTest, ProcessesShareOneBudgetAndSurviveASigkilledPeer) {
  const double rate = 2000.0;  // high, so that ~1 s gives thousands of grants
  const uint32_t burst = 5;
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), rate, burst);
  const int64_t I = seg.bucket().intervalNs();

  void* mem = ::mmap(nullptr, sizeof(GrantLog), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  auto* log = new (mem) GrantLog{};
  struct Unmap {
    void* p;
    ~Unmap() { ::munmap(p, sizeof(GrantLog)); }
  } unmap{mem};

  Children kids;
  const int64_t start = monoNs();
  for (int i = 0; i < CHILDREN; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) hammer(seg.name(), log, i);
    kids.pids.push_back(pid);
  }

  // Let everyone hammer for ~0.7 s, then SIGKILL child 0 wherever it is.
  auto countOf = [&](int i) { return log->slots[i].count.load(std::memory_order_acquire); };
  const int64_t hardDeadline = start + 30 * SEC;  // only reached if the machine stalls
  while ((monoNs() < start + 700 * MS || countOf(0) < 10) && monoNs() < hardDeadline) ::usleep(5000);
  ASSERT_EQ(::kill(kids.pids[0], SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(kids.pids[0], &status, 0), kids.pids[0]);
  kids.pids[0] = -1;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  const int64_t killedAt = monoNs();
  const uint32_t killedGrants = countOf(0);

  // Survivors must keep getting tokens: nothing was left locked. Run ~0.7 s
  // more and until each has a grant stamped after the kill.
  auto grantsAfterKill = [&](int i) {
    const uint32_t n = countOf(i);
    return n > 0 && log->slots[i].ts[n - 1] > killedAt;
  };
  auto allSurvivorsGot = [&] {
    for (int i = 1; i < CHILDREN; ++i) {
      if (!grantsAfterKill(i)) return false;
    }
    return true;
  };
  while ((monoNs() < killedAt + 700 * MS || !allSurvivorsGot()) && monoNs() < hardDeadline) ::usleep(5000);
  log->stop.store(1, std::memory_order_release);
  for (int i = 1; i < CHILDREN; ++i) {
    ASSERT_EQ(::waitpid(kids.pids[i], &status, 0), kids.pids[i]);
    kids.pids[i] = -1;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child " << i << " status " << status;
  }
  for (int i = 1; i < CHILDREN; ++i) EXPECT_TRUE(grantsAfterKill(i)) << "survivor " << i << " starved";

  std::vector<int64_t> all;
  uint64_t denied = 0;
  for (int i = 0; i < CHILDREN; ++i) {
    all.insert(all.end(), log->slots[i].ts, log->slots[i].ts + countOf(i));
    denied += log->slots[i].denied.load();
  }
  ASSERT_FALSE(all.empty());
  const auto [lo, hi] = std::minmax_element(all.begin(), all.end());
  const int64_t spanNs = *hi - *lo;
  const double bound = burst + double(spanNs) / double(I);
  const double excess = worstExcessTokens(all, I, burst);
  std::cout << std::fixed << std::setprecision(1) << "[ figures  ] " << all.size() << " grants in " << spanNs / MS << " ms (bound burst + rate*t = "
            << bound << "), worst window excess " << excess << " tokens (<= 0 required), " << denied
            << " denied attempts, killed child had " << killedGrants << " grants\n";
  RecordProperty("grants", static_cast<int>(all.size()));
  RecordProperty("bound", static_cast<int>(bound));
  EXPECT_LE(double(all.size()), bound);
  EXPECT_LE(excess, 0.0);
  // Liveness is checked above (survivors got tokens after the kill); how close
  // to the bound the total comes depends on CPU time, so it is printed, not asserted.
  EXPECT_GT(all.size(), size_t{2} * burst);
}
