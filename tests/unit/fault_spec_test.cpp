#include "shared/fault_spec.h"

#include <gtest/gtest.h>

using namespace sshsoak;

namespace {

FaultSpec ok(const std::string& text) {
  auto r = parseFaultSpec(text);
  EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error());
  return r.ok() ? *r : FaultSpec{};
}

std::string error(const std::string& text) {
  auto r = parseFaultSpec(text);
  EXPECT_FALSE(r.ok()) << text << " parsed as " << (r.ok() ? r->text() : "");
  return r.ok() ? "" : r.error();
}

TEST(FaultSpecTest, TheReferenceExamplesParse) {
  FaultSpec l = ok("latency=200ms~50ms@30s-90s@0-4");
  EXPECT_EQ(l.kind, FaultKind::LATENCY);
  EXPECT_EQ(l.delayMs, 200);
  EXPECT_EQ(l.jitterMs, 50);
  EXPECT_EQ(l.direction, FaultDirection::BOTH);
  EXPECT_EQ(l.when.startMs, 30000);
  EXPECT_EQ(l.when.lengthMs, 60000);
  EXPECT_EQ(l.when.everyMs, 0);
  EXPECT_EQ(l.sessions, (std::vector<uint32_t>{0, 1, 2, 3, 4}));

  FaultSpec b = ok("blackhole@20s+30s");
  EXPECT_EQ(b.kind, FaultKind::BLACKHOLE);
  EXPECT_EQ(b.when.startMs, 20000);
  EXPECT_EQ(b.when.lengthMs, 30000);
  EXPECT_TRUE(b.sessions.empty());

  FaultSpec r = ok("reset@40s/60s");
  EXPECT_EQ(r.kind, FaultKind::RESET);
  EXPECT_EQ(r.when.startMs, 40000);
  EXPECT_EQ(r.when.lengthMs, 0);  // a point in time, every minute
  EXPECT_EQ(r.when.everyMs, 60000);
}

TEST(FaultSpecTest, EveryKindAndItsParameters) {
  FaultSpec bw = ok("bandwidth=1mbit,down");
  EXPECT_EQ(bw.bytesPerSec, 125000u);
  EXPECT_EQ(bw.direction, FaultDirection::DOWN);
  EXPECT_FALSE(bw.actsUp());
  EXPECT_TRUE(bw.actsDown());
  EXPECT_EQ(ok("bandwidth=512kbit").bytesPerSec, 64000u);
  EXPECT_EQ(ok("bandwidth=2MB").bytesPerSec, 2000000u);
  EXPECT_EQ(ok("bandwidth=100KB/s,up").bytesPerSec, 100000u);
  EXPECT_EQ(ok("timeout=5s").durationMs, 5000);
  EXPECT_EQ(ok("slow-close=2s").durationMs, 2000);
  FaultSpec lim = ok("limit-data=64KB,up");
  EXPECT_EQ(lim.bytes, 64000u);
  EXPECT_EQ(lim.direction, FaultDirection::UP);
  EXPECT_EQ(ok("limit-data=1MiB").bytes, 1048576u);
  FaultSpec sl = ok("slicer=64B~16B/1ms");
  EXPECT_EQ(sl.bytes, 64u);
  EXPECT_EQ(sl.bytesJitter, 16u);
  EXPECT_EQ(sl.delayMs, 1);
  EXPECT_EQ(ok("slicer=1KB/10ms").bytesJitter, 0u);
  EXPECT_EQ(ok("latency=1.5s,up").delayMs, 1500);
  EXPECT_EQ(ok("latency=2m").delayMs, 120000);
}

TEST(FaultSpecTest, WhenForms) {
  FaultSpec from = ok("latency=10ms@30s");
  EXPECT_EQ(from.when.startMs, 30000);
  EXPECT_FALSE(from.when.lengthMs);
  FaultSpec repeat = ok("blackhole@30s+10s/60s@1,3");
  EXPECT_EQ(repeat.when.lengthMs, 10000);
  EXPECT_EQ(repeat.when.everyMs, 60000);
  EXPECT_EQ(repeat.sessions, (std::vector<uint32_t>{1, 3}));
  FaultSpec sessionsOnly = ok("reset@2");  // no unit: a session list
  EXPECT_EQ(sessionsOnly.sessions, std::vector<uint32_t>{2});
  EXPECT_EQ(sessionsOnly.when, FaultWhen{});
  EXPECT_TRUE(ok("reset@all").sessions.empty());
  EXPECT_EQ(ok("reset@7,0-2,1").sessions, (std::vector<uint32_t>{0, 1, 2, 7}));
}

TEST(FaultSpecTest, TextRoundTrips) {
  for (const char* text :
       {"latency=200ms~50ms@30s-90s@0-4", "blackhole@20s+30s", "reset@40s/60s", "bandwidth=1mbit,down@10s+20s",
        "timeout=5s@30s+20s", "slow-close=2s", "limit-data=64KB,up@30s@0,2", "slicer=64B~16B/1ms",
        "latency=1.5s,up@0s+1m/2m@all", "bandwidth=3B", "reset@1,3,4,5,9", "limit-data=1MiB,down",
        "latency=0ms~5ms"}) {
    FaultSpec s = ok(text);
    auto again = parseFaultSpec(s.text());
    ASSERT_TRUE(again.ok()) << text << " -> " << s.text() << ": " << again.error();
    EXPECT_EQ(*again, s) << text << " -> " << s.text();
  }
  EXPECT_EQ(ok("latency=200ms~50ms@30s-90s@0-4").text(), "latency=200ms~50ms@30s+1m@0-4");
  EXPECT_EQ(ok("reset@1,3,4,5,9").text(), "reset@1,3-5,9");
  EXPECT_EQ(ok("blackhole").text(), "blackhole");
}

TEST(FaultSpecTest, ErrorsNameTheSpecThePartAndAnExample) {
  std::string e = error("latency=200@30s");
  EXPECT_NE(e.find("'latency=200@30s'"), std::string::npos) << e;
  EXPECT_NE(e.find("PARAMS '200'"), std::string::npos) << e;
  EXPECT_NE(e.find("e.g. 'latency=200ms~50ms@30s-90s@0-4'"), std::string::npos) << e;

  e = error("jitter=5ms");
  EXPECT_NE(e.find("KIND 'jitter'"), std::string::npos) << e;

  e = error("blackhole@20x+30s");
  EXPECT_NE(e.find("WHEN part '20x+30s'"), std::string::npos) << e;
  EXPECT_NE(e.find("e.g. 'blackhole@20s+30s'"), std::string::npos) << e;

  e = error("blackhole@30s@1-x");
  EXPECT_NE(e.find("SESSIONS part '1-x'"), std::string::npos) << e;

  EXPECT_NE(error("blackhole@30s/60s").find("repeats but has no length"), std::string::npos);
  EXPECT_NE(error("blackhole@30s+60s/60s").find("overlap"), std::string::npos);
  EXPECT_NE(error("blackhole@30s-20s").find("ends before it starts"), std::string::npos);
  EXPECT_NE(error("reset=3").find("takes no parameters"), std::string::npos);
  EXPECT_NE(error("latency=5ms,sideways").find("not a direction"), std::string::npos);
  EXPECT_NE(error("slicer=64B~64B/1ms").find("jitter below it"), std::string::npos);
  EXPECT_NE(error("latency=10ms@0-4@30s").find("sessions come last"), std::string::npos);
  for (const char* bad : {"", "latency", "latency=", "latency=0ms", "bandwidth=0mbit", "bandwidth=1e3KB",
                          "timeout=5", "limit-data=-1KB", "reset@", "reset@1@2@3", "reset@1,,2", "reset@3-1",
                          "reset@100000", "latency=inf", "latency=nanms", "blackhole@1s@2s", "reset@1,"}) {
    (void)error(bad);
  }
}

TEST(FaultSpecTest, SessionFilter) {
  FaultSpec s = ok("reset@2,5-6");
  EXPECT_FALSE(s.appliesTo(0));
  EXPECT_TRUE(s.appliesTo(2));
  EXPECT_TRUE(s.appliesTo(6));
  EXPECT_FALSE(s.appliesTo(7));
  EXPECT_TRUE(ok("reset").appliesTo(999));
}

// Which window is in force at t, for each WHEN form.
TEST(FaultScheduleTest, WindowsInForceAtT) {
  FaultWhen whole = ok("blackhole").when;
  EXPECT_EQ(faultActiveAt(whole, 0), (FaultOccurrence{1, 0, std::nullopt}));
  EXPECT_TRUE(faultActiveAt(whole, 1'000'000'000));

  FaultWhen from = ok("blackhole@30s").when;
  EXPECT_FALSE(faultActiveAt(from, 29999));
  EXPECT_EQ(faultActiveAt(from, 30000), (FaultOccurrence{1, 30000, std::nullopt}));

  FaultWhen window = ok("blackhole@20s+30s").when;
  EXPECT_FALSE(faultActiveAt(window, 19999));
  EXPECT_TRUE(faultActiveAt(window, 20000));
  EXPECT_TRUE(faultActiveAt(window, 49999));
  EXPECT_FALSE(faultActiveAt(window, 50000));
  EXPECT_EQ(faultStartedBy(window, 1'000'000), 1u);

  FaultWhen repeat = ok("blackhole@10s+5s/60s").when;
  EXPECT_FALSE(faultActiveAt(repeat, 9999));
  EXPECT_EQ(faultActiveAt(repeat, 12000)->number, 1u);
  EXPECT_FALSE(faultActiveAt(repeat, 15000));
  EXPECT_FALSE(faultActiveAt(repeat, 69999));
  EXPECT_EQ(faultActiveAt(repeat, 70000), (FaultOccurrence{2, 70000, 75000}));
  EXPECT_EQ(faultStartedBy(repeat, 130000), 3u);
  EXPECT_EQ(faultOccurrence(repeat, 4), (FaultOccurrence{4, 190000, 195000}));

  // A repeating reset is a point in time: it starts and ends at once, and
  // is never "in force" between.
  FaultWhen resets = ok("reset@40s/60s").when;
  EXPECT_FALSE(faultActiveAt(resets, 40000));
  EXPECT_EQ(faultStartedBy(resets, 39999), 0u);
  EXPECT_EQ(faultStartedBy(resets, 40000), 1u);
  EXPECT_EQ(faultStartedBy(resets, 100000), 2u);
  EXPECT_EQ(faultOccurrence(resets, 2), (FaultOccurrence{2, 100000, 100000}));
}

}  // namespace
