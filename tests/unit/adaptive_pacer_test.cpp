// The adaptive pacer's control law with an injected clock, its crash-safe
// shared state from threads (ThreadSanitizer runs this file), and the
// segment that carries it between processes.
#include "shared/adaptive_pacer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "shared/clock.h"
#include "shared/fd.h"
#include "shared/token_bucket.h"

using namespace sshsoak;

namespace {

constexpr int64_t MS = 1'000'000;
constexpr int64_t SEC = 1'000'000'000;
constexpr int64_t BASE = 1000 * SEC;  // the pacer's zero; every "now" below is after it
constexpr int64_t FAST_US = 5'000;    // a quick connect + auth on loopback

// A pacer in plain memory with its own law, as a segment holds one.
struct Fixture {
  explicit Fixture(double initial, PacerLaw l = PacerLaw{}, uint32_t burst = 8) : law(l), burstOf(burst) {
    state = std::make_unique<PacerState>();
    pacer().init(initial);
  }
  AdaptivePacer pacer() { return AdaptivePacer(*state, law, burstOf, BASE); }
  double rate() { return pacer().ratePerSec(); }

  PacerLaw law;
  std::unique_ptr<PacerState> state;
  uint32_t burstOf = 8;
};

}  // namespace

TEST(AdaptivePacer, StartsAtTheGivenRateClampedToItsBounds) {
  EXPECT_DOUBLE_EQ(Fixture(10).rate(), 10.0);
  PacerLaw law;
  law.minRatePerSec = 5;
  law.maxRatePerSec = 50;
  EXPECT_DOUBLE_EQ(Fixture(1, law).rate(), 5.0);
  EXPECT_DOUBLE_EQ(Fixture(500, law).rate(), 50.0);
}

TEST(AdaptivePacer, FastSuccessesRaiseTheRateOneStepEach) {
  Fixture f(10);
  int64_t now = BASE + SEC;
  for (int i = 0; i < 10; ++i) f.pacer().reportSuccess(FAST_US, now += 10 * MS);
  EXPECT_DOUBLE_EQ(f.rate(), 10.0 + 10 * f.law.risePerOk);
  PacerSnapshot s = f.pacer().snapshot();
  EXPECT_EQ(s.ok, 10u);
  EXPECT_EQ(s.increases, 10u);
  EXPECT_EQ(s.decreases, 0u);
}

TEST(AdaptivePacer, EachOverloadSignCutsTheRateMultiplicatively) {
  for (ConnectSignal sign : {ConnectSignal::RESET_BEFORE_BANNER, ConnectSignal::MAX_STARTUPS, ConnectSignal::TIMEOUT}) {
    Fixture f(100);
    f.pacer().reportFailure(sign, BASE + SEC);
    EXPECT_DOUBLE_EQ(f.rate(), 100 * f.law.decreaseFactor) << overloadReason(sign);
    PacerSnapshot s = f.pacer().snapshot();
    EXPECT_EQ(s.decreases, 1u);
    EXPECT_EQ(s.lastReason, sign);
  }
  // Connect time far above the recent minimum: a success that is a sign
  // too, which narrows the handshake window and leaves the rate.
  Fixture f(100);
  f.pacer().reportSuccess(FAST_US, BASE + SEC);
  const double before = f.rate();
  f.pacer().reportSuccess(FAST_US + f.law.slowMarginUs + 1000, BASE + 2 * SEC);
  EXPECT_DOUBLE_EQ(f.rate(), before);
  EXPECT_EQ(f.pacer().window(), 4u);
  PacerSnapshot s = f.pacer().snapshot();
  EXPECT_EQ(s.decreases, 1u);
  EXPECT_EQ(s.slow, 1u);
  EXPECT_EQ(s.lastReason, ConnectSignal::SLOW);
  EXPECT_EQ(overloadReason(ConnectSignal::SLOW), "overload: handshake time rising");
  EXPECT_EQ(overloadReason(ConnectSignal::MAX_STARTUPS), "overload: MaxStartups");
  EXPECT_EQ(overloadReason(ConnectSignal::RESET_BEFORE_BANNER), "overload: resets before banner");
  EXPECT_EQ(overloadReason(ConnectSignal::TIMEOUT), "overload: timeouts");
}

TEST(AdaptivePacer, ASlowConnectNeedsBothTheFactorAndTheMargin) {
  // 6x a 5 ms minimum is 30 ms, but within the 200 ms margin: not slow.
  Fixture f(100);
  ASSERT_EQ(f.law.slowFactor, 6.0);
  ASSERT_EQ(f.law.slowMarginUs, 200'000);
  f.pacer().reportSuccess(FAST_US, BASE + SEC);
  f.pacer().reportSuccess(FAST_US + f.law.slowMarginUs - 1000, BASE + 2 * SEC);
  EXPECT_EQ(f.pacer().snapshot().slow, 0u);
  // 500 ms against a 100 ms minimum is past the margin but under 6x: not slow.
  Fixture g(100);
  g.pacer().reportSuccess(100'000, BASE + SEC);
  g.pacer().reportSuccess(500'000, BASE + 2 * SEC);
  EXPECT_EQ(g.pacer().snapshot().slow, 0u);
  g.pacer().reportSuccess(700'000, BASE + 3 * SEC);
  EXPECT_EQ(g.pacer().snapshot().slow, 1u);
}

TEST(AdaptivePacer, FailuresThatSayNothingOfLoadChangeNothing) {
  Fixture f(100);
  f.pacer().reportFailure(ConnectSignal::NONE, BASE + SEC);
  EXPECT_DOUBLE_EQ(f.rate(), 100.0);
  EXPECT_EQ(f.pacer().snapshot().decreases, 0u);
}

TEST(AdaptivePacer, OneOverloadReportedByManyAgentsIsOneDecrease) {
  Fixture f(100);
  const int64_t t0 = BASE + SEC;
  // 50 agents whose connects the same overload hit, all within the holdoff.
  for (int i = 0; i < 50; ++i) {
    f.pacer().reportFailure(i % 2 ? ConnectSignal::MAX_STARTUPS : ConnectSignal::TIMEOUT,
                            t0 + i * (f.law.holdoffUs * 1000 / 60));
  }
  EXPECT_DOUBLE_EQ(f.rate(), 50.0);
  PacerSnapshot s = f.pacer().snapshot();
  EXPECT_EQ(s.decreases, 1u);
  EXPECT_EQ(s.maxStartups + s.timeouts, 50u);  // every report is counted, one is acted on
  // Past the holdoff, a new report is a new overload.
  f.pacer().reportFailure(ConnectSignal::MAX_STARTUPS, t0 + f.law.holdoffUs * 1000);
  EXPECT_DOUBLE_EQ(f.rate(), 25.0);
  EXPECT_EQ(f.pacer().snapshot().decreases, 2u);
}

TEST(AdaptivePacer, NoRiseWithinTheHoldoffAfterACut) {
  Fixture f(100);
  const int64_t t0 = BASE + SEC;
  f.pacer().reportFailure(ConnectSignal::MAX_STARTUPS, t0);
  // Connects granted before the cut still succeed: they must not undo it.
  for (int i = 1; i <= 10; ++i) f.pacer().reportSuccess(FAST_US, t0 + i * 10 * MS);
  EXPECT_DOUBLE_EQ(f.rate(), 50.0);
  f.pacer().reportSuccess(FAST_US, t0 + f.law.holdoffUs * 1000);
  EXPECT_DOUBLE_EQ(f.rate(), 50.0 + f.law.risePerOk);
}

TEST(AdaptivePacer, ClimbsFastBackToTheLastCutThenProbesSlowly) {
  Fixture f(100);
  int64_t now = BASE + SEC;
  f.pacer().reportFailure(ConnectSignal::MAX_STARTUPS, now);  // 100 -> 50, wMax 100
  now += f.law.holdoffUs * 1000;
  for (int i = 0; i < 25; ++i) f.pacer().reportSuccess(FAST_US, now += MS);
  EXPECT_DOUBLE_EQ(f.rate(), 100.0);  // 25 steps of 2
  for (int i = 0; i < 4; ++i) f.pacer().reportSuccess(FAST_US, now += MS);
  EXPECT_DOUBLE_EQ(f.rate(), 100.0 + 4 * f.law.probeRise);
}

TEST(AdaptivePacer, StaysBetweenItsFloorAndCeiling) {
  PacerLaw law;
  law.minRatePerSec = 3;
  law.maxRatePerSec = 40;
  Fixture f(10, law);
  int64_t now = BASE + SEC;
  for (int i = 0; i < 100; ++i) f.pacer().reportSuccess(FAST_US, now += MS);
  EXPECT_DOUBLE_EQ(f.rate(), 40.0);
  for (int i = 0; i < 20; ++i) {
    now += law.holdoffUs * 1000;
    f.pacer().reportFailure(ConnectSignal::RESET_BEFORE_BANNER, now);
    EXPECT_GE(f.rate(), 3.0);
  }
  EXPECT_DOUBLE_EQ(f.rate(), 3.0);
}

TEST(AdaptivePacer, BurstAtOnceThenOneTokenPerIntervalOfTheCurrentRate) {
  Fixture f(10, PacerLaw{}, 3);
  const int64_t t0 = BASE + SEC;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(f.pacer().tryAcquire(t0).granted) << i;
  PacerAcquire denied = f.pacer().tryAcquire(t0);
  EXPECT_FALSE(denied.granted);
  EXPECT_EQ(denied.waitNs, 100 * MS);
  EXPECT_TRUE(f.pacer().tryAcquire(t0 + 100 * MS).granted);
}

TEST(AdaptivePacer, ARiseRepricesTheTimeOwedSoTheNextTokenComesSooner) {
  // With the rate doubled, what the burst owes is owed at the new price:
  // the wait halves at once instead of the backlog being paid at the old rate.
  PacerLaw law;
  law.risePerOk = 10;
  Fixture f(10, law, 3);
  const int64_t t0 = BASE + SEC;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(f.pacer().tryAcquire(t0).granted);
  EXPECT_EQ(f.pacer().tryAcquire(t0).waitNs, 100 * MS);
  f.pacer().reportSuccess(FAST_US, t0);
  EXPECT_DOUBLE_EQ(f.rate(), 20.0);
  EXPECT_EQ(f.pacer().tryAcquire(t0).waitNs, 50 * MS);
  // And a cut makes it owed at the lower price.
  f.pacer().reportFailure(ConnectSignal::TIMEOUT, t0);
  EXPECT_EQ(f.pacer().tryAcquire(t0).waitNs, 100 * MS);
}

TEST(AdaptivePacer, TheRecentMinimumExpiresWithItsWindow) {
  PacerLaw law;
  law.minWindowUs = 1'000'000;
  Fixture f(100, law);
  f.pacer().reportSuccess(FAST_US, BASE + SEC);
  f.pacer().reportSuccess(400'000, BASE + SEC + 500 * MS);  // slow against 5 ms
  EXPECT_EQ(f.pacer().snapshot().slow, 1u);
  // A window later, 400 ms is the new normal (a slower server, or a link).
  f.pacer().reportSuccess(400'000, BASE + 3 * SEC);
  f.pacer().reportSuccess(420'000, BASE + 3 * SEC + 100 * MS);
  EXPECT_EQ(f.pacer().snapshot().slow, 1u);
}

// The rate learnt before is kept across idle: the handshake window, not a
// restart from the initial rate, bounds what a storm piles up.
TEST(AdaptivePacer, AfterIdleTheRateIsKept) {
  Fixture f(10);
  int64_t now = BASE + SEC;
  ASSERT_TRUE(f.pacer().tryAcquire(now).granted);
  for (int i = 0; i < 20; ++i) f.pacer().reportSuccess(FAST_US, now += MS);
  EXPECT_DOUBLE_EQ(f.rate(), 50.0);
  ASSERT_TRUE(f.pacer().tryAcquire(now += 600 * SEC).granted);
  EXPECT_DOUBLE_EQ(f.rate(), 50.0);
  EXPECT_EQ(f.pacer().window(), 8u);
}

// Many threads report one overload at the same instant: CAS races, one cut.
TEST(AdaptivePacer, ThreadsReportingOneOverloadAtOnceCutItOnce) {
  Fixture f(200);
  const int64_t t0 = BASE + SEC;
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (int i = 0; i < 100; ++i) f.pacer().reportFailure(ConnectSignal::MAX_STARTUPS, t0);
    });
  }
  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  EXPECT_DOUBLE_EQ(f.rate(), 100.0);
  PacerSnapshot s = f.pacer().snapshot();
  EXPECT_EQ(s.decreases, 1u);
  EXPECT_EQ(s.maxStartups, 800u);
}

// Threads acquiring and reporting at random on the real clock: every report
// is counted once, the rate stays within its bounds, and tokens keep coming.
TEST(AdaptivePacer, ThreadsHammeringAcquireAndReportsStayConsistent) {
  PacerLaw law;
  law.minRatePerSec = 50;
  law.maxRatePerSec = 800;
  law.holdoffUs = 0;  // every sign cuts: the most CAS traffic on both words
  Fixture f(100, law, 4);
  AdaptivePacer p(*f.state, f.law, 4, monoNs() - SEC);
  constexpr int THREADS = 6, OPS = 4000;
  std::atomic<uint64_t> granted{0}, reported{0}, overloads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < THREADS; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(static_cast<uint32_t>(t) * 7919u + 1);
      for (int i = 0; i < OPS; ++i) {
        const uint32_t pick = rng() % 16;
        if (pick < 8) {
          if (p.tryAcquire(monoNs()).granted) granted.fetch_add(1);
        } else if (pick < 15) {
          p.reportSuccess(FAST_US + rng() % 200'000, monoNs());
          reported.fetch_add(1);
        } else {
          const auto sign = static_cast<ConnectSignal>(rng() % 4);  // NONE included: not counted
          p.reportFailure(sign, monoNs());
          if (sign != ConnectSignal::NONE) overloads.fetch_add(1);
        }
        const double r = p.ratePerSec();
        ASSERT_GE(r, law.minRatePerSec);
        ASSERT_LE(r, law.maxRatePerSec);
      }
    });
  }
  for (auto& t : threads) t.join();
  PacerSnapshot s = p.snapshot();
  EXPECT_EQ(s.ok + s.slow, reported.load());  // every success is fast or slow, counted once
  EXPECT_EQ(s.resetsBeforeBanner + s.maxStartups + s.timeouts, overloads.load());
  EXPECT_GT(granted.load(), 0u);
  EXPECT_GT(s.decreases, 0u);
  EXPECT_GT(s.increases, 0u);
}

TEST(AdaptivePacer, TheSegmentCarriesThePacerBetweenViewsAndFixedIgnoresReports) {
  auto adaptive =
      TokenBucketSegment::create(TokenBucketSegment::makeName(), 20.0, 5, ReconnectPacing::ADAPTIVE);
  auto view = TokenBucket::open(adaptive.name());
  EXPECT_EQ(view.pacing(), ReconnectPacing::ADAPTIVE);
  const int64_t now = monoNs();
  view.reportFailure(ConnectSignal::MAX_STARTUPS, now);
  EXPECT_DOUBLE_EQ(adaptive.bucket().currentRatePerSec(), 10.0);
  EXPECT_EQ(adaptive.bucket().pacerSnapshot().maxStartups, 1u);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(view.tryAcquire(now).granted);
  EXPECT_FALSE(adaptive.bucket().tryAcquire(now).granted);

  auto fixed = TokenBucketSegment::create(TokenBucketSegment::makeName(), 20.0, 5);
  auto fixedView = TokenBucket::open(fixed.name());
  EXPECT_EQ(fixedView.pacing(), ReconnectPacing::FIXED);
  fixedView.reportFailure(ConnectSignal::MAX_STARTUPS, now);
  EXPECT_DOUBLE_EQ(fixed.bucket().currentRatePerSec(), 20.0);
  EXPECT_EQ(fixed.bucket().pacerSnapshot().decreases, 0u);
}

TEST(AdaptivePacer, ACorruptLawInTheSegmentIsRefusedOnOpen) {
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 20.0, 5, ReconnectPacing::ADAPTIVE);
  UniqueFd fd(::shm_open(seg.name().c_str(), O_RDWR | O_CLOEXEC, 0));
  ASSERT_TRUE(fd);
  void* p = ::mmap(nullptr, sizeof(TokenBucketState), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  ASSERT_NE(p, MAP_FAILED);
  static_cast<TokenBucketState*>(p)->law.decreaseFactor = 1.5;
  try {
    TokenBucket::open(seg.name());
    ADD_FAILURE() << "opened a segment with a decrease factor of 1.5";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("corrupt header"), std::string::npos) << e.what();
  }
  ::munmap(p, sizeof(TokenBucketState));
  EXPECT_THROW(TokenBucketSegment::create(TokenBucketSegment::makeName(), 20.0, 5, ReconnectPacing::ADAPTIVE,
                                          PacerLaw{.minRatePerSec = 10, .maxRatePerSec = 5}),
               std::invalid_argument);
}

// A process SIGKILLed in the middle of hammering the pacer leaves nothing
// held: the survivors' acquires and reports go on.
TEST(AdaptivePacer, AProcessKilledWhileReportingLeavesNothingHeld) {
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 100.0, 4, ReconnectPacing::ADAPTIVE);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    TokenBucket b = TokenBucket::open(seg.name());
    std::mt19937 rng(7);
    for (;;) {
      b.tryAcquire();
      if (rng() % 2) b.reportSuccess(FAST_US, monoNs());
      else b.reportFailure(ConnectSignal::MAX_STARTUPS, monoNs());
    }
  }
  ::usleep(100'000);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  TokenBucket survivor = TokenBucket::open(seg.name());
  const uint64_t before = survivor.pacerSnapshot().ok;
  EXPECT_GT(before + survivor.pacerSnapshot().maxStartups, 0u);
  survivor.reportSuccess(FAST_US, monoNs() + 10 * SEC);
  EXPECT_EQ(survivor.pacerSnapshot().ok, before + 1);
  const int64_t later = monoNs() + 20 * SEC;
  EXPECT_TRUE(survivor.tryAcquire(later).granted);
}

// The handshake window (issue 16): at most `window` connects between their
// slot and the end of authentication, whatever the rate allows.
namespace {
const uint32_t SELF = static_cast<uint32_t>(::getpid());
}  // namespace

TEST(AdaptivePacerWindow, StartsAtTheBurstAndHoldsNoMoreThanItInFlight) {
  Fixture f(10, PacerLaw{}, 4);
  const int64_t now = BASE + SEC;
  EXPECT_EQ(f.pacer().window(), 4u);
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(f.pacer().claimSlot(SELF, now));
    EXPECT_GE(held.back(), 0);
  }
  EXPECT_EQ(f.pacer().inFlight(), 4u);
  EXPECT_EQ(f.pacer().claimSlot(SELF, now), -1) << "a fifth handshake in a window of 4";
  f.pacer().releaseSlot(held[2], SELF);
  EXPECT_EQ(f.pacer().inFlight(), 3u);
  EXPECT_EQ(f.pacer().claimSlot(SELF, now), held[2]);
  EXPECT_EQ(f.pacer().snapshot().inFlight, 4u);
  EXPECT_EQ(f.pacer().snapshot().window, 4u);
}

TEST(AdaptivePacerWindow, ARefusalResetOrTimeoutHalvesItAndFastSuccessesBringItBackToTheBurst) {
  Fixture f(10, PacerLaw{}, 8);
  int64_t now = BASE + SEC;
  f.pacer().reportFailure(ConnectSignal::MAX_STARTUPS, now);
  EXPECT_EQ(f.pacer().window(), 4u);
  now += SEC;
  f.pacer().reportFailure(ConnectSignal::RESET_BEFORE_BANNER, now);
  EXPECT_EQ(f.pacer().window(), 2u);
  now += SEC;
  f.pacer().reportFailure(ConnectSignal::TIMEOUT, now);
  EXPECT_EQ(f.pacer().window(), 1u);
  now += SEC;
  f.pacer().reportFailure(ConnectSignal::TIMEOUT, now);
  EXPECT_EQ(f.pacer().window(), 1u) << "never below one";
  // Held slots above a halved window still count: the cut holds at once.
  EXPECT_GE(f.pacer().claimSlot(SELF, now), 0);
  EXPECT_EQ(f.pacer().claimSlot(SELF, now), -1);
  now += SEC;
  for (int i = 0; i < 20; ++i) f.pacer().reportSuccess(FAST_US, now += 10 * MS);
  EXPECT_EQ(f.pacer().window(), 8u) << "up by one per fast success, never past the burst";
}

TEST(AdaptivePacerWindow, SlowHandshakesNarrowTheWindowToOneAndLeaveTheRate) {
  Fixture f(10, PacerLaw{}, 8);
  int64_t now = BASE + SEC;
  f.pacer().reportSuccess(FAST_US, now);
  const double before = f.rate();
  for (uint32_t expected : {4u, 2u, 1u, 1u}) {
    f.pacer().reportSuccess(FAST_US * 100, now += SEC);
    EXPECT_EQ(f.pacer().window(), expected);
  }
  EXPECT_DOUBLE_EQ(f.rate(), before);
  EXPECT_EQ(f.pacer().snapshot().lastReason, ConnectSignal::SLOW);
}

TEST(AdaptivePacerWindow, ASlotOfAProcessThatIsGoneIsFreedOnceItIsOld) {
  Fixture f(10, PacerLaw{}, 2);
  // A real pid that is gone: a child that exited and was reaped.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  const int64_t t0 = BASE + SEC;
  ASSERT_GE(f.pacer().claimSlot(static_cast<uint32_t>(child), t0), 0);
  ASSERT_GE(f.pacer().claimSlot(SELF, t0), 0);
  // Young: not even looked at (no syscall per held slot in a storm).
  EXPECT_EQ(f.pacer().claimSlot(SELF, t0 + SEC), -1);
  // Older than slotCheckAliveUs: the dead holder's slot is freed and taken.
  ASSERT_EQ(f.law.slotCheckAliveUs, 5'000'000);
  EXPECT_GE(f.pacer().claimSlot(SELF, t0 + 6 * SEC), 0);
  EXPECT_EQ(f.pacer().snapshot().slotsFreed, 1u);
  EXPECT_EQ(f.pacer().inFlight(), 2u) << "a live holder's slot is kept";
}

// A claimer whose clock reading is older than a holder's claim (it was
// descheduled between reading the clock and scanning) sees a young slot.
TEST(AdaptivePacerWindow, AClaimMadeAfterTheClaimersNowIsYoungNotStale) {
  Fixture f(10, PacerLaw{}, 1);
  const int64_t t0 = BASE + 10 * SEC;
  ASSERT_GE(f.pacer().claimSlot(SELF, t0), 0);
  EXPECT_EQ(f.pacer().claimSlot(SELF, t0 - 5 * MS), -1);
  EXPECT_EQ(f.pacer().snapshot().slotsFreed, 0u);
}

TEST(AdaptivePacerWindow, ASlotHeldPastTheStaleTimeIsFreedEvenIfItsHolderLives) {
  PacerLaw law;
  law.slotStaleUs = 20'000'000;
  Fixture f(10, law, 1);
  const int64_t t0 = BASE + SEC;
  const int slot = f.pacer().claimSlot(SELF, t0);
  ASSERT_GE(slot, 0);
  EXPECT_EQ(f.pacer().claimSlot(SELF, t0 + 19 * SEC), -1);
  const int again = f.pacer().claimSlot(SELF + 1, t0 + 21 * SEC);
  EXPECT_EQ(again, slot);
  // The first holder's late release must not free the new holder's slot.
  f.pacer().releaseSlot(slot, SELF);
  EXPECT_EQ(f.pacer().inFlight(), 1u);
  f.pacer().releaseSlot(slot, SELF + 1);
  EXPECT_EQ(f.pacer().inFlight(), 0u);
  f.pacer().releaseSlot(-1, SELF);  // ignored
  f.pacer().releaseSlot(100000, SELF);
}

// Threads claiming and releasing at once never hold more than the window.
TEST(AdaptivePacerWindow, ThreadsClaimingAtOnceNeverExceedTheWindow) {
  Fixture f(10, PacerLaw{}, 5);
  std::atomic<int> inside{0}, most{0};
  std::atomic<uint64_t> claims{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        const int slot = f.pacer().claimSlot(SELF, BASE + SEC);
        if (slot < 0) continue;
        const int now = inside.fetch_add(1) + 1;
        int seen = most.load();
        while (now > seen && !most.compare_exchange_weak(seen, now)) {
        }
        claims.fetch_add(1);
        inside.fetch_sub(1);
        f.pacer().releaseSlot(slot, SELF);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(claims.load(), 0u);
  EXPECT_LE(most.load(), 5);
  EXPECT_EQ(f.pacer().inFlight(), 0u);
}

// An agent SIGKILLed between its claim and its release: the slot is free
// again for the survivors once it is old enough to be checked.
TEST(AdaptivePacerWindow, AnAgentKilledHoldingASlotDoesNotKeepIt) {
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 100.0, 1, ReconnectPacing::ADAPTIVE);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    TokenBucket b = TokenBucket::open(seg.name());
    const int slot = b.claimHandshakeSlot(monoNs());
    char c = slot >= 0 ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ASSERT_EQ(c, 'y');
  TokenBucket survivor = TokenBucket::open(seg.name());
  EXPECT_EQ(survivor.claimHandshakeSlot(monoNs()), TokenBucket::NO_SLOT_FREE);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(pid, nullptr, 0), pid);
  EXPECT_EQ(survivor.claimHandshakeSlot(monoNs() + 6 * SEC), 0);
  EXPECT_EQ(survivor.pacerSnapshot().slotsFreed, 1u);
}

TEST(AdaptivePacerWindow, FixedPacingNeedsNoSlot) {
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 10.0, 2, ReconnectPacing::FIXED);
  EXPECT_EQ(seg.bucket().claimHandshakeSlot(monoNs()), TokenBucket::NO_SLOT_NEEDED);
  seg.bucket().releaseHandshakeSlot(TokenBucket::NO_SLOT_NEEDED);
}

// A slot's age counts from the token's grant: a long wait for the token
// must not make a live handshake's slot look stale.
TEST(AdaptivePacerWindow, ASlotRestampedAtTheGrantAgesFromThere) {
  PacerLaw law;
  law.slotStaleUs = 20'000'000;
  Fixture f(10, law, 1);
  const int64_t t0 = BASE + SEC;
  const int slot = f.pacer().claimSlot(SELF, t0);
  ASSERT_GE(slot, 0);
  f.pacer().restampSlot(slot, SELF + 1, t0 + 15 * SEC);  // not the holder: ignored
  f.pacer().restampSlot(slot, SELF, t0 + 15 * SEC);
  EXPECT_EQ(f.pacer().claimSlot(SELF, t0 + 30 * SEC), -1) << "15 s after the grant: still young";
  EXPECT_EQ(f.pacer().claimSlot(SELF, t0 + 36 * SEC), slot) << "21 s after the grant: stale";
}

// A slow handshake narrows the window under a holdoff of its own: it
// neither holds off a refusal's cut of the rate nor becomes the rate's last
// cut (above which the rate would only probe).
TEST(AdaptivePacerWindow, ASlowSignNeitherHoldsOffARefusalNorSlowsTheRatesClimb) {
  Fixture f(10, PacerLaw{}, 8);
  int64_t now = BASE + SEC;
  f.pacer().reportSuccess(FAST_US, now);
  const double before = f.rate();
  f.pacer().reportSuccess(FAST_US * 100, now += SEC);  // slow: window 8 -> 4
  EXPECT_EQ(f.pacer().window(), 4u);
  f.pacer().reportFailure(ConnectSignal::MAX_STARTUPS, now += MS);  // within the window's holdoff
  EXPECT_DOUBLE_EQ(f.rate(), before * f.law.decreaseFactor) << "the refusal cut the rate at once";
  EXPECT_EQ(f.pacer().window(), 4u) << "one narrowing per holdoff";
  // After the holdoffs the rate climbs by the full step (the last rate cut
  // is the refusal's, at `before`; below it the step is risePerOk).
  f.pacer().reportSuccess(FAST_US, now += SEC);
  EXPECT_DOUBLE_EQ(f.rate(), before * f.law.decreaseFactor + f.law.risePerOk);
  EXPECT_EQ(f.pacer().window(), 5u);
}
