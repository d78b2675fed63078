#include "netns.h"

#include "shared/clock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>

namespace sshsoak::testing {

namespace {

constexpr const char* NETNS_ENV = "SSHSOAK_TEST_IN_NETNS";

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    *status = -1;
    return "popen failed";
  }
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  *status = ::pclose(p);
  return out;
}

}  // namespace

bool inPrivateNetns() {
  const char* v = std::getenv(NETNS_ENV);
  return v != nullptr && std::string(v) == "1";
}

void iptables(const std::string& args) {
  int status = 0;
  std::string out = run("iptables -w " + args, &status);
  ASSERT_EQ(status, 0) << "iptables " << args << ": " << out;
}

int64_t tsNs(const Json& line) { return parseIsoTimestamp(line["ts"].get<std::string>()); }

long cpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

long rssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

void NetnsSshdTest::SetUp() {
  if (inPrivateNetns()) {
    int status = 0;
    std::string out = run("ip link set lo up", &status);
    ASSERT_EQ(status, 0) << "cannot bring lo up in the test's network namespace: " << out;
    SshdTest::SetUp();
    return;
  }
  delegated_ = true;
  ASSERT_EQ(::geteuid(), 0u) << "this test injects real network faults with iptables inside a private "
                                "network namespace (unshare -n) and needs root: run the tests as root";
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string filter = std::string(info->test_suite_name()) + "." + info->name();
  char self[4096];
  ssize_t len = ::readlink("/proc/self/exe", self, sizeof self - 1);
  ASSERT_GT(len, 0);
  self[len] = '\0';
  int status = 0;
  std::string out = run(std::string("unshare -n env ") + NETNS_ENV + "=1 " + self + " --gtest_filter=" + filter +
                            " --gtest_color=no",
                        &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "in a private network namespace (unshare -n; needs root and namespace support):\n"
      << out;
  auto at = out.find("[ RUN");
  std::printf("%s", at == std::string::npos ? out.c_str() : out.c_str() + at);
}

void NetnsSshdTest::TearDown() {
  if (!delegated_) SshdTest::TearDown();
}

}  // namespace sshsoak::testing
