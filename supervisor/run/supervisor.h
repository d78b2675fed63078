// The supervisor's run: spawns one sshsoak-agent per session slot, reads
// their event streams in one Boost.Asio loop, writes the JSONL log (it is its
// only writer), and shuts everything down cleanly at the end.
#pragma once

#include <sys/types.h>

#include <array>
#include <utility>  // before asio: Boost 1.74's awaitable.hpp uses std::exchange unincluded
#include <boost/asio.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/token_bucket.h"
#include "supervisor/run/fault_relay.h"
#include "supervisor/run/faults.h"
#include "supervisor/run/job_dispatcher.h"
#include "supervisor/run/slot.h"
#include "supervisor/cli.h"
#include "supervisor/run/jsonl_log.h"
#include "supervisor/run/resource_stats.h"
#include "supervisor/run/sampler.h"
#include "supervisor/run/exit_status.h"
#include "supervisor/run/restart_policy.h"
#include "supervisor/analysis/run_accumulator.h"
#include "supervisor/analysis/run_model.h"

namespace sshsoak {

class Supervisor {
 public:
  Supervisor(const cli::Options& options, std::string agentPath, JsonlLog& log);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Runs to the end (duration, q/quit, SIGINT, SIGTERM) and writes the
  // summary line. Returns the summary.
  Json run();
  const RunModel& model() const { return model_; }
  // The run as the report reads it (run_accumulator.h), fed every line the
  // log gets: the end-of-run table and the HTML at a checkpoint
  // (report::runOf(source, accumulator()) then report::renderHtml) come
  // from it, not from reading the log back.
  std::shared_ptr<RunAccumulator> accumulator() const { return run_; }
  const ResourceStats* resources() const { return resources_.get(); }
  std::vector<pid_t> agentPids() const;
  // A checkpoint's --html write failed (named on the console then): the
  // run's exit code says so (main.cpp).
  bool htmlFailed() const { return htmlFailed_; }
  // --fault: the relay died during the run (how, in words; empty: it did
  // not). The run was ended then; main.cpp makes it exit code 71.
  const std::string& relayFailure() const { return relayFailure_; }

 private:
  // A slot's life, driven from the loop (slot.h has its states).
  void spawn(Slot& slot);
  void armRead(Slot& slot);
  void onEventBytes(Slot& slot, size_t n);
  // A decoded event of this slot's agent (line: its JSON, unless it is a
  // heartbeat or a job result).
  void onEvent(Slot& slot, wire::Event::Reader event, Json line, const std::string& heartbeatPhase);
  void agentProtocolError(Slot& slot, const std::string& error);
  // The watchdog: one timer for every slot (--heartbeat-secs).
  void armWatchdog();
  void checkAgentsAlive();
  void agentUnresponsive(Slot& slot, int64_t silentMs);
  void reapChildren();
  void onAgentEnding(Slot& slot, std::string_view why);
  void maybeFinished(Slot& slot);
  void restart(Slot& slot);
  void giveUp(Slot& slot, const std::string& reason);
  void sendCommand(Slot& slot, bool shutdown);
  void beginShutdown(const std::string& why);
  void killRemaining();
  void recordRemaining();
  void armSignals();
  void armStdin();
  // A repeating --drop re-arms its own timer: nothing piles up per drop.
  void armDrop(size_t index, std::chrono::seconds after, boost::asio::steady_timer* timer = nullptr);
  void startFault(const FaultCommand& fault);
  void reapFaults(bool killAll);
  // --fault: sshsoak-proxy started, agents pointed at it, its reports logged.
  void startRelay();
  void onRelayReport(const Json& report);
  void startSampling();
  void onSamplePasses();
  void recordPass(const SamplePass& pass);
  void finalSample();
  std::string statusText() const;
  // The summary, resources and verdict as they stand: the final summary
  // line and every checkpoint are built by this one function.
  Json summaryNow() const;
  void armCheckpoint();
  void writeCheckpoint();
  // The HTML report of the run so far, replaced atomically (--html).
  void writeCheckpointHtml();
  bool allFinished() const;
  // The log failed (JsonlLog's failure handler): named on the console; with
  // --on-log-error stop the run ends, with console it goes on.
  void onLogFailure(const LogFailure& failure);

  const cli::Options& options_;
  std::string agentPath_;
  JsonlLog& log_;
  std::shared_ptr<RunAccumulator> run_;  // fed every line the log gets (JsonlLog listener)
  RunModel& model_;                      // run_'s
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer durationTimer_;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> faultTimers_;
  std::vector<std::unique_ptr<RunningFault>> runningFaults_;
  // The run's reconnect token bucket, removed from /dev/shm on every way
  // out of the run (a SIGKILLed run's segment is cleaned by the next).
  std::optional<TokenBucketSegment> bucket_;
  boost::asio::steady_timer shutdownTimer_;
  boost::asio::steady_timer checkpointTimer_;  // --checkpoint-secs
  uint32_t checkpoints_ = 0;
  boost::asio::steady_timer watchdogTimer_;  // --heartbeat-secs: one for all slots
  int64_t lastWatchdogMono_ = 0;
  std::unique_ptr<ResourceStats> resources_;
  // After io_ (its passes are posted there); stopped and joined on every
  // way out of the run.
  std::unique_ptr<SamplerThread> sampler_;
  SamplePass pass_;  // the loop's side of the sampler's hand-over
  std::unique_ptr<boost::asio::posix::stream_descriptor> stdin_;
  std::array<char, 256> stdinBuf_{};
  std::string stdinLine_;
  // After io_: they use it.
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<FaultRelay> relay_;  // --fault only; after io_
  std::string relayFailure_;
  std::unique_ptr<jobs::JobDispatcher> jobs_;  // --workload jobs: the queue and its lines
  bool shuttingDown_ = false;
  bool killed_ = false;
  bool htmlFailed_ = false;
  int64_t startMono_ = 0;
  int64_t startWallNs_ = 0;  // the churn schedule's origin
};

}  // namespace sshsoak
