#include "supervisor/run/restart_policy.h"

#include <gtest/gtest.h>

using namespace sshsoak;

TEST(RestartPolicy, BackoffStartsSmallAndDoubles) {
  RestartPolicy p(RestartConfig{.minDelayMs = 200, .maxDelayMs = 1000, .stableUptimeMs = 30000,
                                .maxCrashes = 100, .windowMs = 60000});
  int64_t now = 0;
  std::vector<int64_t> delays;
  for (int i = 0; i < 6; ++i) {
    auto d = p.onCrash(now, now - 10);  // up 10 ms each time
    ASSERT_FALSE(d.giveUp);
    delays.push_back(d.delayMs);
    now += d.delayMs + 10;
  }
  EXPECT_EQ(delays, (std::vector<int64_t>{200, 400, 800, 1000, 1000, 1000}));
}

TEST(RestartPolicy, StableUptimeResetsTheBackoff) {
  RestartPolicy p(RestartConfig{.minDelayMs = 100, .maxDelayMs = 30000, .stableUptimeMs = 5000,
                                .maxCrashes = 100, .windowMs = 60000});
  EXPECT_EQ(p.onCrash(1000, 900).delayMs, 100);
  EXPECT_EQ(p.onCrash(2000, 1900).delayMs, 200);
  EXPECT_EQ(p.onCrash(3000, 2900).delayMs, 400);
  // Up for 5 s: the next crash is treated as a first one again.
  EXPECT_EQ(p.onCrash(9000, 4000).delayMs, 100);
  EXPECT_EQ(p.onCrash(9500, 9400).delayMs, 200);
}

TEST(RestartPolicy, TooManyCrashesInTheWindowGiveUp) {
  RestartPolicy p(RestartConfig{.minDelayMs = 100, .maxDelayMs = 30000, .stableUptimeMs = 30000,
                                .maxCrashes = 3, .windowMs = 10000});
  EXPECT_FALSE(p.onCrash(0, 0).giveUp);
  EXPECT_FALSE(p.onCrash(1000, 900).giveUp);
  auto d = p.onCrash(2000, 1900);
  EXPECT_TRUE(d.giveUp);
  EXPECT_EQ(d.crashesInWindow, 3u);
}

TEST(RestartPolicy, CrashesOutsideTheWindowAreForgotten) {
  RestartPolicy p(RestartConfig{.minDelayMs = 100, .maxDelayMs = 30000, .stableUptimeMs = 30000,
                                .maxCrashes = 3, .windowMs = 10000});
  EXPECT_FALSE(p.onCrash(0, 0).giveUp);
  EXPECT_FALSE(p.onCrash(1000, 900).giveUp);
  auto d = p.onCrash(10500, 10400);  // the first crash has left the window
  EXPECT_FALSE(d.giveUp);
  EXPECT_EQ(d.crashesInWindow, 2u);
  EXPECT_TRUE(p.onCrash(10600, 10550).giveUp);
}

TEST(RestartPolicy, HugeCrashCountsDoNotOverflowTheDelay) {
  RestartPolicy p(RestartConfig{.minDelayMs = 200, .maxDelayMs = 30000, .stableUptimeMs = 1LL << 60,
                                .maxCrashes = 1000000, .windowMs = 1});
  RestartDecision d;
  for (int i = 0; i < 200; ++i) d = p.onCrash(i * 10, i * 10);
  EXPECT_EQ(d.delayMs, 30000);
}
