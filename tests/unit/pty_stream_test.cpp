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
