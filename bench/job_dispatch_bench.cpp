// The supervisor's dispatch overhead per job (issue 13's target: under
// 50 µs, so 1000 jobs/s is not limited by the queue). Google Benchmark.
//
// Measured, per job, with the real code of a run: a worker's jobResult frame
// read from a real pipe (read(2), FrameReader, FlatArrayMessageReader), the
// JobDispatcher handling it (the queue's bookkeeping, the per-worker rollup),
// and the next job picked, built as a Cap'n Proto Command.runJob and written
// to the worker's real command pipe. What an agent would do (encoding its
// result, reading its command) runs between the timed parts and is not
// counted (manual time). Jobs are done, as most are: no job line.
#include <benchmark/benchmark.h>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

#include "shared/clock.h"
#include "shared/fd.h"
#include "shared/frame.h"
#include "supervisor/run/job_dispatcher.h"
#include "supervisor/run/jsonl_log.h"

namespace {

using namespace sshsoak;

constexpr uint32_t WORKERS = 4;
constexpr uint32_t JOBS_PER_ITER = 1000;

struct Pipes {
  int readFd = -1, writeFd = -1;
  Pipes() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    readFd = fds[0];
    writeFd = fds[1];
    ::fcntl(writeFd, F_SETPIPE_SZ, 1 << 20);
    ::fcntl(readFd, F_SETFL, O_NONBLOCK);  // the fake worker drains what is there
  }
  ~Pipes() {
    ::close(readFd);
    ::close(writeFd);
  }
};

cli::Options benchOptions() {
  cli::Options o;
  o.workload = cli::WorkloadKind::JOBS;
  o.targets = {cli::Target{"127.0.0.1", 2222}};
  o.slots.assign(WORKERS, o.targets[0]);
  o.user = "soak";
  o.jobsFile = "bench.jsonl";
  for (uint32_t i = 1; i <= JOBS_PER_ITER; ++i) {
    cli::JobSpec s;
    s.line = i;
    s.commands = {"uname -n", "date +%s", "true"};  // the short job
    o.jobs.push_back(s);
  }
  o.jobReportSecs = 3600;  // the rollup is recorded per job; its line is not the figure
  return o;
}

// What the worker sends back: done, reused, three commands.
std::vector<unsigned char> resultFrame(uint32_t worker, uint64_t jobId) {
  capnp::MallocMessageBuilder msg;
  auto ev = msg.initRoot<wire::Event>();
  ev.setSessionId(worker);
  ev.setWallNs(wallNs());
  ev.setSuccess(true);
  auto r = ev.initJobResult();
  r.setJobId(jobId);
  r.setOutcome(wire::JobOutcome::DONE);
  r.setAttempt(1);
  r.setReused(true);
  r.setLivenessUs(180);
  r.setRunUs(2400);
  r.setCommandsRun(3);
  auto codes = r.initExitCodes(3);
  for (unsigned i = 0; i < 3; ++i) codes.set(i, 0);
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return {bytes.begin(), bytes.end()};
}

void BM_JobDispatchPerJob(benchmark::State& state) {
  cli::Options options = benchOptions();
  std::string logPath = "/tmp/sshsoak-bench-jobs-" + std::to_string(::getpid()) + ".jsonl";
  std::array<char, 65536> buf{};
  std::array<char, 65536> drain{};
  int64_t allTimedNs = 0;
  for (auto _ : state) {
    boost::asio::io_context io;  // never run: timers stay armed, nothing fires
    JsonlLog log(logPath);
    Pipes commands, results;
    bool allDone = false;
    jobs::JobDispatcher dispatcher(
        options, io, log,
        jobs::DispatcherHooks{.send = [&](uint32_t, capnp::MessageBuilder& m) { return writeFrame(commands.writeFd, m); },
                              .workerHost = [](uint32_t) { return std::string("127.0.0.1:2222"); },
                              .allDone = [&](const std::string&) { allDone = true; }});
    FrameReader frames;
    int64_t timedNs = 0;
    int64_t t0 = monoNs();
    dispatcher.start();
    for (uint32_t w = 0; w < WORKERS; ++w) dispatcher.onAgentStarted(w);
    timedNs += monoNs() - t0;
    uint64_t answered = 0;
    while (!allDone) {
      for (uint32_t w = 0; w < WORKERS && !allDone; ++w) {
        const jobs::QueuedJob* job = dispatcher.queue().inFlight(w);
        if (job == nullptr) continue;
        // The worker: reads its command, answers (not timed).
        while (::read(commands.readFd, drain.data(), drain.size()) > 0) {
        }
        auto frame = resultFrame(w, job->id);
        if (::write(results.writeFd, frame.data(), frame.size()) != static_cast<ssize_t>(frame.size())) {
          state.SkipWithError("write result");
        }
        // The supervisor: as Supervisor::onEventBytes does.
        int64_t t = monoNs();
        ssize_t n = ::read(results.readFd, buf.data(), buf.size());
        frames.feed(buf.data(), static_cast<size_t>(n));
        while (auto words = frames.next()) {
          capnp::FlatArrayMessageReader reader(*words);
          auto event = reader.getRoot<wire::Event>();
          dispatcher.onJobResult(event.getSessionId(), event);
          ++answered;
        }
        timedNs += monoNs() - t;
      }
    }
    dispatcher.finish();
    if (answered != JOBS_PER_ITER || dispatcher.queue().counters().done != JOBS_PER_ITER) {
      state.SkipWithError("not every job was answered once");
    }
    state.SetIterationTime(static_cast<double>(timedNs) / 1e9);
    allTimedNs += timedNs;
    ::unlink(logPath.c_str());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * JOBS_PER_ITER);
  state.counters["us_per_job"] =
      static_cast<double>(allTimedNs) / 1e3 / (static_cast<double>(state.iterations()) * JOBS_PER_ITER);
}
BENCHMARK(BM_JobDispatchPerJob)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // the dispatcher's per-phase info lines
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
