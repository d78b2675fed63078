// Cost of one reconnect-token acquisition. Not a test: prints figures.
//   build/bin/token_bucket_bench
#include <benchmark/benchmark.h>

#include <atomic>

#include "shared/clock.h"
#include "shared/token_bucket.h"

using namespace sshsoak;

namespace {

// The GCRA step alone, always granted: the clock moves one interval per call.
void BM_GcraGranted(benchmark::State& state) {
  std::atomic<int64_t> tat{0};
  int64_t now = 1'000'000'000;
  for (auto _ : state) {
    now += 1000;
    benchmark::DoNotOptimize(gcraTryAcquire(tat, 1000, 5, now));
  }
}
BENCHMARK(BM_GcraGranted);

// Through the shared-memory segment with the real clock (monoNs() included),
// at a rate no caller can keep up with, so every call is granted.
void BM_SegmentGrantedRealClock(benchmark::State& state) {
  // Thread-safe static init: all threads share one segment, removed at exit.
  static TokenBucketSegment seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 1e9, 1000);
  // Every thread maps its own view, as each agent process does.
  auto view = TokenBucket::open(seg.name());
  int64_t granted = 0;
  for (auto _ : state) granted += view.tryAcquire().granted;
  state.counters["granted%"] =
      benchmark::Counter(100.0 * double(granted) / double(state.iterations()), benchmark::Counter::kAvgThreads);
}
BENCHMARK(BM_SegmentGrantedRealClock)->Threads(1)->Threads(2);

// The common case during a storm: the bucket is empty and callers are told to wait.
void BM_SegmentDeniedRealClock(benchmark::State& state) {
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 0.001, 1);
  seg.bucket().tryAcquire();  // empty for the next 1000 s
  for (auto _ : state) benchmark::DoNotOptimize(seg.bucket().tryAcquire());
}
BENCHMARK(BM_SegmentDeniedRealClock);

}  // namespace

BENCHMARK_MAIN();
