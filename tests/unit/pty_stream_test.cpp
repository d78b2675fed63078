#include "session_agent/workloads/pty_stream.h"

#include <gtest/gtest.h>

using namespace sshsoak;
using namespace sshsoak::agent;

TEST(PtyCycleParser, CountsLinesAndBytesBetweenMarkers) {
  PtyCycleParser p;
  std::string stream = "login noise\r\n@@sshsoak-begin 1\r\nline a\r\nline b\r\n@@sshsoak-end 1\r\n";
  auto cycles = p.feed(stream.data(), stream.size(), 1000);
  ASSERT_EQ(cycles.size(), 1u);
  EXPECT_EQ(cycles[0].cycle, 1u);
  EXPECT_EQ(cycles[0].lines, 2u);
  EXPECT_EQ(cycles[0].bytes, 16u);  // "line a\r\n" + "line b\r\n"
  EXPECT_EQ(cycles[0].ms, 0u);
}

TEST(PtyCycleParser, CyclesSplitAcrossArbitraryChunks) {
  std::string stream;
  for (int c = 1; c <= 3; ++c) {
    stream += "@@sshsoak-begin " + std::to_string(c) + "\r\n";
    for (int i = 0; i < 20; ++i) stream += "sshsoak pty line " + std::to_string(i) + "\r\n";
    stream += "@@sshsoak-end " + std::to_string(c) + "\r\n";
  }
  PtyCycleParser p;
  std::vector<PtyCycleResult> all;
  for (size_t i = 0; i < stream.size(); i += 7) {
    auto got = p.feed(stream.data() + i, std::min<size_t>(7, stream.size() - i), static_cast<int64_t>(i));
    all.insert(all.end(), got.begin(), got.end());
  }
  ASSERT_EQ(all.size(), 3u);
  for (size_t c = 0; c < 3; ++c) {
    EXPECT_EQ(all[c].cycle, c + 1);
    EXPECT_EQ(all[c].lines, 20u);
  }
  EXPECT_GT(all[0].ms, 0u);
}

TEST(PtyCycleParser, GarbageAndHugeLinesDoNotGrowWithoutBound) {
  PtyCycleParser p;
  std::string junk(200 * 1024, 'x');
  EXPECT_TRUE(p.feed(junk.data(), junk.size(), 0).empty());
  std::string ok = "\n@@sshsoak-begin 7\nx\n@@sshsoak-end 7\n";
  auto got = p.feed(ok.data(), ok.size(), 5);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].lines, 1u);
}

TEST(PtyCommand, MatchesTheIntensities) {
  EXPECT_EQ(expectedPtyLines(wire::Intensity::LOW), 5u);
  EXPECT_EQ(expectedPtyLines(wire::Intensity::MEDIUM), 20u);
  EXPECT_EQ(expectedPtyLines(wire::Intensity::HIGH), 200u);
  EXPECT_NE(ptyCommand(wire::Intensity::HIGH, 1000).find("yes | head -n 200"), std::string::npos);
  EXPECT_NE(ptyCommand(wire::Intensity::LOW, 250).find("sleep 0.250"), std::string::npos);
  EXPECT_NE(ptyCommand(wire::Intensity::MEDIUM, 0).find("-lt 20"), std::string::npos);
}

// The remote loop must not outlive its channel: every echo into the
// terminal ends the loop when it fails (the terminal is gone), whether or
// not sshd's SIGHUP arrived.
TEST(PtyCommand, EveryEchoEndsTheLoopWhenTheTerminalIsGone) {
  auto count = [](const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
  };
  std::string medium = ptyCommand(wire::Intensity::MEDIUM, 1000);
  EXPECT_EQ(count(medium, "echo "), 3u) << medium;
  EXPECT_EQ(count(medium, "|| exit"), 3u) << medium;
  std::string high = ptyCommand(wire::Intensity::HIGH, 1000);
  EXPECT_EQ(count(high, "echo "), 2u) << high;
  EXPECT_EQ(count(high, "|| exit"), 2u) << high;
}

namespace {

std::string cycleText(int n, int lines) {
  std::string s = "@@sshsoak-begin " + std::to_string(n) + "\r\n";
  for (int i = 1; i <= lines; ++i) s += "sshsoak pty line " + std::to_string(i) + "\r\n";
  return s + "@@sshsoak-end " + std::to_string(n) + "\r\n";
}

std::vector<PtyCycleResult> feedAll(PtyCycleParser& p, const std::string& s, int64_t nowMs, int64_t nowUs) {
  return p.feed(s.data(), s.size(), nowMs, nowUs);
}

}  // namespace

TEST(PtyCycleParser, EchoesAreTakenOutAndTimedIntoTheNextCycle) {
  PtyCycleParser plain;
  auto reference = feedAll(plain, cycleText(2, 3), 0, 0);
  ASSERT_EQ(reference.size(), 1u);

  PtyCycleParser p;
  ASSERT_EQ(feedAll(p, cycleText(1, 3), 0, 0).size(), 1u);
  // Two keys in the pause, each with its erase echo.
  p.probeSent(1'000'000);
  EXPECT_TRUE(p.probeInFlight());
  EXPECT_TRUE(feedAll(p, "~\b \b", 1, 1'000'250).empty());
  EXPECT_FALSE(p.probeInFlight());
  p.probeSent(2'000'000);
  EXPECT_TRUE(feedAll(p, "~", 2, 2'001'500).empty());
  EXPECT_TRUE(feedAll(p, "\b \b", 2, 2'001'600).empty());
  auto cycles = feedAll(p, cycleText(2, 3), 3, 3'000'000);
  ASSERT_EQ(cycles.size(), 1u);
  EXPECT_EQ(cycles[0].lines, reference[0].lines);
  EXPECT_EQ(cycles[0].bytes, reference[0].bytes);
  EXPECT_EQ(cycles[0].echoUs, (std::vector<uint32_t>{250, 1500}));
  // Reported once: the next cycle starts without samples.
  auto next = feedAll(p, cycleText(3, 3), 4, 4'000'000);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_TRUE(next[0].echoUs.empty());
}

TEST(PtyCycleParser, AnEchoInsideABurstLeavesItsCountsAlone) {
  // With no pause the loop prints while the key arrives: the echo lands in
  // the middle of lines, and its erase echo splits across reads.
  std::string stream = cycleText(1, 20);
  std::string withEcho = stream;
  withEcho.insert(60, "~");
  withEcho.insert(100, "\b \b");
  PtyCycleParser plain;
  auto reference = feedAll(plain, stream, 0, 0);
  PtyCycleParser p;
  p.probeSent(0);
  std::vector<PtyCycleResult> all;
  for (size_t i = 0; i < withEcho.size(); i += 3) {
    auto got = p.feed(withEcho.data() + i, std::min<size_t>(3, withEcho.size() - i), 0, static_cast<int64_t>(i));
    all.insert(all.end(), got.begin(), got.end());
  }
  ASSERT_EQ(all.size(), 1u);
  ASSERT_EQ(reference.size(), 1u);
  EXPECT_EQ(all[0].lines, 20u);
  EXPECT_EQ(all[0].bytes, reference[0].bytes);
  EXPECT_EQ(all[0].echoUs, (std::vector<uint32_t>{60}));  // stamped by the chunk it came in
}

TEST(PtyCycleParser, ABackspaceThatIsNoEraseEchoIsData) {
  PtyCycleParser p;
  std::string s = "@@sshsoak-begin 1\r\nab\bc\r\nx\b y\r\n\b\b \b\r\n@@sshsoak-end 1\r\n";
  auto got = feedAll(p, s, 0, 0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].lines, 3u);
  // "ab\bc\r\n" (6) + "x\b y\r\n" (6) + "\b\r\n" (3): one "\b \b" was an erase echo.
  EXPECT_EQ(got[0].bytes, 15u);
}

TEST(PtyCycleParser, AnEchoWithNoKeyInFlightIsNoSample) {
  PtyCycleParser p;
  ASSERT_EQ(feedAll(p, cycleText(1, 1), 0, 0).size(), 1u);
  EXPECT_TRUE(feedAll(p, "~\b \b", 1, 1000).empty());
  EXPECT_EQ(p.strayEchoes(), 1u);
  // Given up on (it never came back in time): its late echo is not taken
  // for the time of a key typed since.
  p.probeSent(2000);
  p.forgetProbe();
  EXPECT_FALSE(p.probeInFlight());
  EXPECT_TRUE(feedAll(p, "~", 2, 9000).empty());
  EXPECT_EQ(p.strayEchoes(), 2u);
  auto got = feedAll(p, cycleText(2, 1), 3, 10000);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].echoUs.empty());
}

TEST(PtyCycleParser, EchoSamplesPerCycleAreBounded) {
  PtyCycleParser p;
  for (int i = 0; i < 1000; ++i) {
    p.probeSent(i * 100);
    feedAll(p, "~\b \b", 0, i * 100 + 7);
  }
  auto got = feedAll(p, cycleText(1, 1), 0, 0);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].echoUs.size(), MAX_ECHO_SAMPLES_PER_CYCLE);
  EXPECT_EQ(got[0].echoUs.front(), 7u);
}

TEST(EchoProbeSchedule, SpreadsThreeKeysOverThePauseAfterABurst) {
  EchoProbeSchedule s;
  EXPECT_EQ(s.dueMs(), NO_WAKE_MS);  // nothing before the first burst ended
  s.cycleEnded(10'000, 1000);
  std::vector<int64_t> due;
  while (s.dueMs() != NO_WAKE_MS) {
    due.push_back(s.dueMs());
    s.typed();
  }
  EXPECT_EQ(due, (std::vector<int64_t>{10'250, 10'500, 10'750}));
  // A burst that ends before the keys were typed starts the spread anew.
  s.cycleEnded(20'000, 400);
  s.typed();
  s.cycleEnded(20'500, 400);
  EXPECT_EQ(s.dueMs(), 20'600);
  // No pause: the keys are due at once (and land among the output).
  s.cycleEnded(30'000, 0);
  EXPECT_EQ(s.dueMs(), 30'000);
}

TEST(PtyTerminalModes, AskForEchoAndDelAsErase) {
  // RFC 4254 8: VERASE (3) = 0x7f, ICANON (51), ECHO (53), ECHOE (54) = 1, TTY_OP_END.
  const std::string expected("\x03\x00\x00\x00\x7f"
                             "\x33\x00\x00\x00\x01"
                             "\x35\x00\x00\x00\x01"
                             "\x36\x00\x00\x00\x01"
                             "\x00",
                             21);
  EXPECT_EQ(ptyTerminalModes(), expected);
  EXPECT_EQ(static_cast<unsigned char>(ECHO_ERASE), 0x7fu);
}

TEST(PtyFlood, TheExpectedBytesFollowTheIntensityAndThePause) {
  // medium: 20 lines of ~22 bytes and two marks per cycle, a cycle per pause.
  uint64_t perCycle = 20 * 22 + 64;
  EXPECT_EQ(expectedPtyBytes(wire::Intensity::MEDIUM, 1000, 1000), perCycle * 2);
  EXPECT_EQ(expectedPtyBytes(wire::Intensity::MEDIUM, 200, 1000), perCycle * 6);
  // A pause of 0 counts a cycle per 10 ms, not an infinite rate.
  EXPECT_EQ(expectedPtyBytes(wire::Intensity::HIGH, 0, 1000), (200 * 3 + 64) * 101u);
  // The floor keeps a quiet workload's flood threshold above noise.
  EXPECT_GT(FLOOD_FLOOR_BYTES, FLOOD_FACTOR * expectedPtyBytes(wire::Intensity::LOW, 1000, FLOOD_WINDOW_MS));
}
