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

// The handshake window moving with the rate standing still is a line too,
// named by the sign that narrowed it; every line carries the window.
TEST(PacerRateLine, ANarrowedWindowIsALineNamedByItsSign) {
  PacerSnapshot s;
  s.ratePerSec = 10;
  s.window = 8;
  PacerRateLine line(s, 8);
  s.window = 4;
  s.inFlight = 3;
  s.slow = 2;
  s.decreases = 1;
  s.lastReason = ConnectSignal::SLOW;
  auto j = line.next(s);
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["reason"], "overload: handshake time rising");
  EXPECT_EQ((*j)["window"], 4);
  EXPECT_EQ((*j)["in_flight"], 3);
  EXPECT_EQ((*j)["rate_per_sec"], 10.0);
  EXPECT_EQ((*j)["signals"]["slow"], 2);
  s.window = 5;
  auto up = line.next(s);
  ASSERT_TRUE(up);
  EXPECT_EQ((*up)["reason"], "rising");
  EXPECT_EQ((*up)["window"], 5);
}
