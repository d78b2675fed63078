// Microbenchmarks of the supervisor's per-event hot path and of a reconnect
// token acquisition (Google Benchmark). Items per second = events per second
// (or tokens per second).
//
// The path measured is the one in Supervisor::onEventBytes: bytes from an
// agent's pipe -> FrameReader -> FlatArrayMessageReader -> eventToJson ->
// JsonlLog::write (one write(2) per line, to a file in /tmp) -> the run
// model's onLine, through the log's listener as in the live run.
#include <benchmark/benchmark.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "shared/clock.h"
#include "shared/frame.h"
#include "shared/token_bucket.h"
#include "supervisor/run/jsonl_log.h"
#include "supervisor/analysis/run_model.h"
#include "supervisor/run/slot.h"

namespace {

using namespace sshsoak;

// The agents' commonest events in a medium-intensity run: a PTY cycle every
// second, an exec poll every 5 s. Alternating them is a fair mix.
std::vector<unsigned char> encodeEvent(uint32_t seq) {
  capnp::MallocMessageBuilder msg;
  auto ev = msg.initRoot<wire::Event>();
  ev.setSessionId(0);
  ev.setWallNs(wallNs());
  ev.setSuccess(true);
  if (seq % 2 == 0) {
    auto p = ev.initPtyCycle();
    p.setBytes(540);
    p.setLines(20);
    p.setMs(3);
    p.setCycle(seq / 2 + 1);
    p.setExpectedLines(20);
  } else {
    ev.setElapsedMs(12);
    auto p = ev.initExecPoll();
    p.setRttMs(12);
    p.setCpuBusyPct(3.5f);
    p.setMemUsedPct(41.2f);
    p.setDiskUsedPct(63.0f);
    p.setBytes(5123);
  }
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return {bytes.begin(), bytes.end()};
}

// A pipe's worth of frames, as the supervisor's 64 KiB reads deliver them.
struct Stream {
  std::vector<unsigned char> bytes;
  size_t events = 0;
  explicit Stream(size_t count) : events(count) {
    for (uint32_t i = 0; i < count; ++i) {
      auto f = encodeEvent(i);
      bytes.insert(bytes.end(), f.begin(), f.end());
    }
  }
};

constexpr size_t CHUNK = Slot::READ_CHUNK_BYTES;  // what the supervisor reads per call
constexpr size_t EVENTS_PER_ITER = 1024;

void BM_FrameDecode(benchmark::State& state) {
  Stream s(EVENTS_PER_ITER);
  uint64_t sink = 0;
  for (auto _ : state) {
    FrameReader reader;
    for (size_t off = 0; off < s.bytes.size(); off += CHUNK) {
      reader.feed(s.bytes.data() + off, std::min(CHUNK, s.bytes.size() - off));
      while (auto words = reader.next()) {
        capnp::FlatArrayMessageReader r(*words);
        sink += r.getRoot<wire::Event>().getWallNs();
      }
    }
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events));
}
BENCHMARK(BM_FrameDecode);

// One message reader per event, as the supervisor does.
std::vector<kj::Array<capnp::word>> decodedFrames(const Stream& s) {
  FrameReader reader;
  reader.feed(s.bytes.data(), s.bytes.size());
  std::vector<kj::Array<capnp::word>> out;
  while (auto words = reader.next()) out.push_back(std::move(*words));
  return out;
}

void BM_EventToJson(benchmark::State& state) {
  Stream s(EVENTS_PER_ITER);
  auto frames = decodedFrames(s);
  const std::string host = "127.0.0.1:22";
  size_t n = 0;
  for (auto _ : state) {
    for (auto& f : frames) {
      capnp::FlatArrayMessageReader r(f);
      std::string line = eventToJson(r.getRoot<wire::Event>(), host).dump();
      n += line.size();
    }
  }
  benchmark::DoNotOptimize(n);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * frames.size()));
}
BENCHMARK(BM_EventToJson);

std::string tempLogPath(const char* tag) {
  return "/tmp/sshsoak-bench-" + std::string(tag) + "-" + std::to_string(::getpid()) + ".jsonl";
}

void BM_JsonlRenderAndWrite(benchmark::State& state) {
  Stream s(EVENTS_PER_ITER);
  auto frames = decodedFrames(s);
  std::string path = tempLogPath("write");
  {
    JsonlLog log(path);
    const std::string host = "127.0.0.1:22";
    for (auto _ : state) {
      for (auto& f : frames) {
        capnp::FlatArrayMessageReader r(f);
        log.write(eventToJson(r.getRoot<wire::Event>(), host));
      }
      // Keep the file small: the figure is the write(2), not the disk filling.
      state.PauseTiming();
      if (::truncate(path.c_str(), 0) != 0) state.SkipWithError("truncate failed");
      state.ResumeTiming();
    }
  }
  ::unlink(path.c_str());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * frames.size()));
}
BENCHMARK(BM_JsonlRenderAndWrite);

// The whole per-event path of Supervisor::onEventBytes.
void BM_SupervisorHotPath(benchmark::State& state) {
  Stream s(EVENTS_PER_ITER);
  std::string path = tempLogPath("hot");
  {
    JsonlLog log(path);
    RunModel model({"127.0.0.1:22"});
    log.setListener([&model](const Json& line) { model.onLine(line); });
    const std::string host = "127.0.0.1:22";
    for (auto _ : state) {
      FrameReader reader;
      for (size_t off = 0; off < s.bytes.size(); off += CHUNK) {
        reader.feed(s.bytes.data() + off, std::min(CHUNK, s.bytes.size() - off));
        while (auto words = reader.next()) {
          capnp::FlatArrayMessageReader r(*words);
          log.write(eventToJson(r.getRoot<wire::Event>(), host));
        }
      }
      state.PauseTiming();
      if (::truncate(path.c_str(), 0) != 0) state.SkipWithError("truncate failed");
      state.ResumeTiming();
    }
  }
  ::unlink(path.c_str());
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * s.events));
}
BENCHMARK(BM_SupervisorHotPath);

// GCRA step alone, on a process-local atomic, clock included.
void BM_TokenGcraLocal(benchmark::State& state) {
  std::atomic<int64_t> tat{0};
  const int64_t interval = tokenIntervalNs(1e9);  // 1 ns: (almost) always granted
  int64_t granted = 0;
  for (auto _ : state) granted += gcraTryAcquire(tat, interval, 5, monoNs()).granted;
  benchmark::DoNotOptimize(granted);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TokenGcraLocal);

// What an agent does: tryAcquire() on the shared-memory segment.
void BM_TokenBucketShm(benchmark::State& state) {
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 1e9, 5);
  auto& bucket = seg.bucket();
  int64_t granted = 0;
  for (auto _ : state) granted += bucket.tryAcquire().granted;
  benchmark::DoNotOptimize(granted);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TokenBucketShm);

// Denied path (bucket empty): what agents hit in a storm.
void BM_TokenBucketShmDenied(benchmark::State& state) {
  auto seg = TokenBucketSegment::create(TokenBucketSegment::makeName(), 0.001, 1);
  auto& bucket = seg.bucket();
  bucket.tryAcquire();
  int64_t waits = 0;
  for (auto _ : state) waits += bucket.tryAcquire().waitNs > 0;
  benchmark::DoNotOptimize(waits);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TokenBucketShmDenied);

}  // namespace

BENCHMARK_MAIN();
