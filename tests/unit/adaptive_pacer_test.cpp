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
  explicit Fixture(double initial, PacerLaw l = PacerLaw{}, uint32_t burst = 8) : law(l) {
    state = std::make_unique<PacerState>();
    pacer().init(initial);
    burstOf = burst;
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
  // Connect time far above the recent minimum: a success that is a sign too.
  Fixture f(100);
  f.pacer().reportSuccess(FAST_US, BASE + SEC);
  const double before = f.rate();
  f.pacer().reportSuccess(FAST_US + f.law.slowMarginUs + 1000, BASE + 2 * SEC);
  EXPECT_DOUBLE_EQ(f.rate(), before * f.law.decreaseFactor);
  PacerSnapshot s = f.pacer().snapshot();
  EXPECT_EQ(s.slow, 1u);
  EXPECT_EQ(s.lastReason, ConnectSignal::SLOW);
  EXPECT_EQ(overloadReason(ConnectSignal::SLOW), "overload: handshake time rising");
  EXPECT_EQ(overloadReason(ConnectSignal::MAX_STARTUPS), "overload: MaxStartups");
  EXPECT_EQ(overloadReason(ConnectSignal::RESET_BEFORE_BANNER), "overload: resets before banner");
  EXPECT_EQ(overloadReason(ConnectSignal::TIMEOUT), "overload: timeouts");
}

TEST(AdaptivePacer, ASlowConnectNeedsBothTheFactorAndTheMargin) {
  // 4x a 5 ms minimum is 20 ms, but within the 100 ms margin: not slow.
  Fixture f(100);
  f.pacer().reportSuccess(FAST_US, BASE + SEC);
  f.pacer().reportSuccess(FAST_US + f.law.slowMarginUs - 1000, BASE + 2 * SEC);
  EXPECT_EQ(f.pacer().snapshot().slow, 0u);
  // 300 ms against a 200 ms minimum is past the margin but under 4x: not slow.
  Fixture g(100);
  g.pacer().reportSuccess(200'000, BASE + SEC);
  g.pacer().reportSuccess(300'000, BASE + 2 * SEC);
  EXPECT_EQ(g.pacer().snapshot().slow, 0u);
  g.pacer().reportSuccess(900'000, BASE + 3 * SEC);
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

TEST(AdaptivePacer, AfterIdleTheNextTokenRestartsFromTheInitialRate) {
  Fixture f(10);
  int64_t now = BASE + SEC;
  ASSERT_TRUE(f.pacer().tryAcquire(now).granted);
  for (int i = 0; i < 20; ++i) f.pacer().reportSuccess(FAST_US, now += MS);
  EXPECT_DOUBLE_EQ(f.rate(), 50.0);
  // Tokens keep being taken: no restart.
  ASSERT_TRUE(f.pacer().tryAcquire(now += f.law.idleRestartUs * 1000 / 2).granted);
  EXPECT_DOUBLE_EQ(f.rate(), 50.0);
  // Nobody connected for longer than the idle bound: a storm now starts low.
  // (Idle counts from the bucket's time, which runs ahead of the last grant.)
  ASSERT_TRUE(f.pacer().tryAcquire(now += f.law.idleRestartUs * 1000 + 200 * MS).granted);
  EXPECT_DOUBLE_EQ(f.rate(), 10.0);
  EXPECT_EQ(f.pacer().snapshot().restarts, 1u);
  // A rate below the initial one is not raised by idling.
  f.pacer().reportFailure(ConnectSignal::TIMEOUT, now);
  ASSERT_TRUE(f.pacer().tryAcquire(now += f.law.idleRestartUs * 1000 + 200 * MS).granted);
  EXPECT_DOUBLE_EQ(f.rate(), 5.0);
  EXPECT_EQ(f.pacer().snapshot().restarts, 1u);
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
