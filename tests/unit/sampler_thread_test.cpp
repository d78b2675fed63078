// The sampler's thread (in the ThreadSanitizer set): passes arrive on
// schedule through the hand-over, a loop that does not take them costs
// missed ticks and no memory, and stop() leaves no thread and no fd behind.
#include <dirent.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "shared/clock.h"
#include "supervisor/run/sampler.h"

using namespace sshsoak;

namespace {

size_t entriesOf(const char* dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir)) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n - (std::string(dir) == "/proc/self/fd" ? 1 : 0);  // opendir's own fd
}

}  // namespace

// ThreadSanitizer starts a background thread of its own when a test creates
// its first thread, and keeps it: one more thread than the sampler's.
#if defined(__SANITIZE_THREAD__)
constexpr size_t SANITIZER_THREADS = 1;
#else
constexpr size_t SANITIZER_THREADS = 0;
#endif

TEST(SamplerThread, PassesArriveOnScheduleAndStopLeavesNoThreadOrFd) {
  size_t threadsBefore = entriesOf("/proc/self/task");
  size_t fdsBefore = entriesOf("/proc/self/fd");
  std::atomic<int> notified{0};
  {
    SamplerConfig config;
    config.intervalMs = 50;
    config.detailMs = 200;
    config.sessions = 1;
    SamplerThread sampler(config, monoMs(), [&] { ++notified; });
    sampler.setAgent(0, ::getpid());  // this process stands in for an agent too
    sampler.start();
    EXPECT_TRUE(sampler.running());
    EXPECT_GE(entriesOf("/proc/self/task"), threadsBefore + 1);
    EXPECT_LE(entriesOf("/proc/self/task"), threadsBefore + 1 + SANITIZER_THREADS);
    SamplePass pass;
    int passes = 0, details = 0;
    int64_t until = monoMs() + 1000;
    while (monoMs() < until) {
      while (sampler.take(pass)) {
        ++passes;
        details += pass.detail;
        ASSERT_EQ(pass.procs.size(), 2u);
        EXPECT_EQ(pass.procs[1].role, ProcRole::AGENT);
        // The thread never overwrites a pass not taken: every pass made is seen.
        EXPECT_EQ(pass.taken, static_cast<uint64_t>(passes));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // 20 ticks of 50 ms in 1 s, give or take a loaded machine's.
    EXPECT_GE(passes, 12);
    EXPECT_LE(passes, 21);
    EXPECT_GE(details, 3);
    EXPECT_GE(notified.load(), passes);
    sampler.stop();
    EXPECT_FALSE(sampler.running());
    sampler.finalPass(pass);
    EXPECT_TRUE(pass.detail);
    EXPECT_GT(pass.procs[0].pssKb, 0u);
    sampler.stop();  // idempotent
  }
  EXPECT_GE(entriesOf("/proc/self/task"), threadsBefore);
  EXPECT_LE(entriesOf("/proc/self/task"), threadsBefore + SANITIZER_THREADS) << "the sampler's thread is joined";
  EXPECT_EQ(entriesOf("/proc/self/fd"), fdsBefore) << "the kept /proc/PID/stat fds are closed";
}

TEST(SamplerThread, ALoopThatDoesNotTakePassesCostsMissedTicksNotMemory) {
  SamplerConfig config;
  config.intervalMs = 20;
  config.detailMs = 100;
  SamplerThread sampler(config, monoMs(), [] {});
  sampler.start();
  // The "loop" is stuck for 500 ms: one pass waits, the ticks meanwhile are missed.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  SamplePass pass;
  ASSERT_TRUE(sampler.take(pass));
  EXPECT_FALSE(sampler.take(pass)) << "one pass pending at most";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(sampler.take(pass));
  EXPECT_GE(pass.missed, 15u) << "about 24 ticks of 20 ms were skipped";
  EXPECT_LE(pass.taken, 10u);
  sampler.stop();
}
