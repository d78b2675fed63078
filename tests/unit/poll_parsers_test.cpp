#include "session_agent/workloads/poll_parsers.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

using namespace sshsoak;
using namespace sshsoak::agent;

namespace {

std::string captured(const std::string& name) {
  std::ifstream in(std::string(TEST_DATA_DIR) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << name;
  return ss.str();
}

// An expected failure of the agent layer, categorised as a parse error.
template <typename T>
bool isParseError(const Result<T, SshError>& r) {
  return !r.ok() && r.error().category == wire::FailureCategory::PARSE;
}

}  // namespace

// The files under tests/data are real outputs captured on a Debian 12 host.
TEST(PollParsers, RealProcStat) {
  auto r = parseProcStat(captured("proc_stat.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto t = r.value();
  // cpu  8075 0 2759 184739 349 0 46 23 0 0
  EXPECT_EQ(t.total, 8075u + 2759 + 184739 + 349 + 46 + 23);
  EXPECT_EQ(t.idle, 184739u + 349);
  EXPECT_NEAR(cpuBusyPct(t, std::nullopt), 100.0 * (8075 + 2759 + 46 + 23) / t.total, 1e-9);
}

TEST(PollParsers, CpuBusyBetweenSamples) {
  CpuTimes a{1000, 900}, b{1100, 950};
  EXPECT_DOUBLE_EQ(cpuBusyPct(b, a), 50.0);
  // A counter that went backwards (host rebooted) falls back to since-boot.
  EXPECT_DOUBLE_EQ(cpuBusyPct(a, b), 10.0);
}

TEST(PollParsers, RealMeminfo) {
  auto r = parseMemUsedPct(captured("proc_meminfo.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  double pct = r.value();
  EXPECT_GT(pct, 0.0);
  EXPECT_LT(pct, 100.0);
  auto exact = parseMemUsedPct("MemTotal:  1000 kB\nMemFree: 10 kB\nMemAvailable:   250 kB\n");
  EXPECT_DOUBLE_EQ(exact.value(), 75.0);
}

TEST(PollParsers, RealDf) {
  auto r = parseDfUsedPct(captured("df_h.txt"));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_DOUBLE_EQ(r.value(), 17.0);
  auto wrapped = parseDfUsedPct(captured("df_h_wrapped.txt"));
  ASSERT_TRUE(wrapped.ok());
  EXPECT_DOUBLE_EQ(wrapped.value(), 40.0);
}

TEST(PollParsers, PyenvNoiseOnStdoutBeforeTheRealOutputIsTolerated) {
  auto r = parseProcStat("pyenv: shell integration not enabled\n" + captured("proc_stat.txt"));
  EXPECT_TRUE(r.ok());
}

TEST(PollParsers, TruncatedOrGarbledIsAnErrorNotACrash) {
  std::string stat = captured("proc_stat.txt");
  std::string mem = captured("proc_meminfo.txt");
  std::string df = captured("df_h.txt");
  // Every prefix: either a value or an error, never a crash or UB.
  for (size_t n = 0; n < stat.size(); n += 7) (void)parseProcStat(stat.substr(0, n));
  for (size_t n = 0; n < mem.size(); n += 7) (void)parseMemUsedPct(mem.substr(0, n));
  for (size_t n = 0; n < df.size(); ++n) (void)parseDfUsedPct(df.substr(0, n));

  EXPECT_TRUE(isParseError(parseProcStat("")));
  EXPECT_TRUE(isParseError(parseProcStat("cpu  12 x 3 4\n")));
  EXPECT_TRUE(isParseError(parseProcStat("cpu 1 2\n")));
  EXPECT_TRUE(isParseError(parseProcStat("cpu 99999999999999999999999 1 1 1\n")));
  EXPECT_TRUE(isParseError(parseMemUsedPct("MemTotal: 100 kB\n")));
  EXPECT_TRUE(isParseError(parseMemUsedPct("MemTotal: 0 kB\nMemAvailable: 0 kB\n")));
  EXPECT_TRUE(isParseError(parseMemUsedPct("MemTotal: 10 kB\nMemAvailable: 20 kB\n")));
  EXPECT_TRUE(isParseError(parseDfUsedPct("")));
  EXPECT_TRUE(isParseError(parseDfUsedPct("Filesystem Size Used Avail Use% Mounted on\n")));
  EXPECT_TRUE(isParseError(parseDfUsedPct("Filesystem Size\n/dev/x 1G 1G 0 140% /\n")));
  EXPECT_TRUE(isParseError(parseDfUsedPct("\x01\x02\xff garbage\n")));
}
