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
#include <vector>

#include "shared/fd.h"
#include "shared/frame.h"
#include "shared/token_bucket.h"
#include "supervisor/run/faults.h"
#include "supervisor/cli.h"
#include "supervisor/run/jsonl_log.h"
#include "supervisor/run/resource_stats.h"
#include "supervisor/run/exit_status.h"
#include "supervisor/run/restart_policy.h"
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
  const ResourceStats* resources() const { return resources_.get(); }
  std::vector<pid_t> agentPids() const;

 private:
  struct AgentProc {
    uint32_t id = 0;
    std::string host;
    pid_t pid = -1;
    UniqueFd commandFd;
    std::unique_ptr<boost::asio::posix::stream_descriptor> events;
    FrameReader reader;
    std::array<char, 65536> buf{};
    bool eof = true;
    bool reaped = true;
    int waitStatus = 0;
    // Supervision.
    int64_t startedMono = 0;
    uint32_t restarts = 0;          // how many times this slot was started again
    bool connectedSinceSpawn = false;
    bool gaveUp = false;
    RestartPolicy policy;
    std::unique_ptr<boost::asio::steady_timer> restartTimer;
  };

  void spawn(AgentProc& agent);
  void armRead(AgentProc& agent);
  void onEventBytes(AgentProc& agent, size_t n);
  void reapChildren();
  void maybeFinished(AgentProc& agent);
  void onCrash(AgentProc& agent, const ExitInfo& exit, Json line);
  void restart(AgentProc& agent);
  void giveUp(AgentProc& agent, const std::string& reason);
  void sendCommand(AgentProc& agent, bool shutdown);
  void beginShutdown(const std::string& why);
  void killRemaining();
  void armSignals();
  void armStdin();
  void armDrop(size_t index, std::chrono::seconds after);
  void startFault(const FaultCommand& fault);
  void reapFaults(bool killAll);
  void armSampling();
  std::string statusText(const Json& total) const;
  void sampleResources();
  bool allFinished() const;

  const cli::Options& options_;
  std::string agentPath_;
  JsonlLog& log_;
  RunModel model_;  // fed every line the log gets (JsonlLog listener)
  boost::asio::io_context io_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer durationTimer_;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> faultTimers_;
  std::vector<std::unique_ptr<RunningFault>> runningFaults_;
  // The run's reconnect token bucket, removed from /dev/shm on every way
  // out of the run (a SIGKILLed run's segment is cleaned by the next).
  std::optional<TokenBucketSegment> bucket_;
  boost::asio::steady_timer shutdownTimer_;
  boost::asio::steady_timer sampleTimer_;
  std::unique_ptr<ResourceStats> resources_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> stdin_;
  std::array<char, 256> stdinBuf_{};
  std::string stdinLine_;
  std::vector<std::unique_ptr<AgentProc>> agents_;
  bool shuttingDown_ = false;
  bool killed_ = false;
  int64_t startMono_ = 0;
};

}  // namespace sshsoak
