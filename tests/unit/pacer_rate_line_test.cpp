#include "supervisor/run/pacer_rate_line.h"

#include <gtest/gtest.h>

using namespace sshsoak;

TEST(PacerRateLine, OnlyAChangedRateIsALineWithTheCountsSinceTheLastOne) {
  PacerSnapshot s;
  s.ratePerSec = 10;
  PacerRateLine line(s, 8);
  EXPECT_FALSE(line.next(s));

  s.ratePerSec = 14;
  s.ok = 2;
  s.increases = 2;
  auto up = line.next(s);
  ASSERT_TRUE(up);
  EXPECT_EQ((*up)["rate_per_sec"], 14.0);
  EXPECT_EQ((*up)["burst"], 8);
  EXPECT_EQ((*up)["reason"], "rising");
  EXPECT_EQ((*up)["signals"]["ok"], 2);

  // Counted while the rate stood still: they go into the next line.
  s.timeouts = 1;
  s.maxStartups = 3;
  s.resetsBeforeBanner = 1;
  EXPECT_FALSE(line.next(s));
  s.ratePerSec = 7;
  s.decreases = 1;
  s.lastReason = ConnectSignal::MAX_STARTUPS;
  auto down = line.next(s);
  ASSERT_TRUE(down);
  EXPECT_EQ((*down)["reason"], "overload: MaxStartups");
  EXPECT_EQ((*down)["signals"]["ok"], 0);
  EXPECT_EQ((*down)["signals"]["refused"], 4);
  EXPECT_EQ((*down)["signals"]["max_startups"], 3);
  EXPECT_EQ((*down)["signals"]["timeouts"], 1);
  EXPECT_EQ((*down)["decreases"], 1);
}

TEST(PacerRateLine, RatesBelowOnePerSecondKeepTwoDecimals) {
  PacerSnapshot s;
  s.ratePerSec = 1;
  PacerRateLine line(s, 1);
  s.ratePerSec = 0.125;
  s.lastReason = ConnectSignal::TIMEOUT;
  auto j = line.next(s);
  ASSERT_TRUE(j);
  EXPECT_DOUBLE_EQ((*j)["rate_per_sec"].get<double>(), 0.13);
  EXPECT_EQ((*j)["reason"], "overload: timeouts");
}

TEST(PacerRateLine, ARestartAfterIdleIsNamedSo) {
  PacerSnapshot s;
  s.ratePerSec = 40;
  PacerRateLine line(s, 8);
  s.ratePerSec = 10;
  s.restarts = 1;
  s.lastReason = ConnectSignal::MAX_STARTUPS;  // an older cut: not this change's reason
  auto j = line.next(s);
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["reason"], "idle restart");
  EXPECT_EQ((*j)["restarts"], 1);
}
