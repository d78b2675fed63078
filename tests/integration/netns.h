// Real network faults for integration tests: the test re-runs itself inside
// a private network namespace (unshare -n, lo up), where iptables rules on
// lo cut traffic for that namespace only. The host's network is never
// touched. Needs root; without it the test fails and says so.
#pragma once

#include <string>

#include "sshd_fixture.h"

namespace sshsoak::testing {

bool inPrivateNetns();
// Runs `iptables -w ARGS` (inside the namespace); fails the test on error.
void iptables(const std::string& args);
// Wall-clock ns of a log line's `ts`.
int64_t tsNs(const Json& line);
// utime + stime of a process, in clock ticks.
long cpuTicks(pid_t pid);
long rssKb(pid_t pid);

// A SshdTest that runs its body in a private network namespace: in the
// outer process SetUp re-executes this one test there and reports its
// result; the body then returns at once (check `delegated()`).
class NetnsSshdTest : public SshdTest {
 protected:
  void SetUp() override;
  void TearDown() override;
  bool delegated() const { return delegated_; }

 private:
  bool delegated_ = false;
};

}  // namespace sshsoak::testing
