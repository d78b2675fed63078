// The supervisor's /proc sampler (docs/design.md, "The sampler"). A thread of
// its own reads /proc so that no pass, however slow on a loaded machine,
// delays the Asio loop's drops, faults, deadlines or the end of the run.
//
// Two kinds of pass, on one schedule:
//   cheap  (every --sample-interval-secs): /proc/PID/stat of the supervisor
//          and each agent, through an fd kept open per process (one pread
//          each): CPU, RSS, threads;
//   detail (every --sample-detail-secs): also smaps_rollup (PSS), the fd
//          list (count, socket inodes), /proc/net/tcp{,6} once (sockets by
//          state) and, with a known local sshd, one /proc scan for its
//          per-connection processes. Each detail pass is one resource_sample
//          line.
// A pass that overruns its interval skips the ticks it ran over and counts
// them (missed). Buffers are reused: no allocation per pass once the run's
// sizes are reached.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "supervisor/run/proc_sample.h"

namespace sshsoak {

// When passes are due and which are detail passes; pure, so its logic is
// tested with made-up times.
class SampleSchedule {
 public:
  SampleSchedule(int64_t startMs, int64_t intervalMs, int64_t detailMs);
  int64_t nextDueMs() const { return nextDueMs_; }
  struct Tick {
    bool detail = false;
    uint32_t missed = 0;  // ticks skipped before this one (a pass or the loop overran)
  };
  // A pass begins at nowMs (>= nextDueMs()).
  Tick begin(int64_t nowMs);

 private:
  int64_t intervalMs_;
  int64_t detailMs_;
  int64_t nextDueMs_;
  int64_t nextDetailMs_;
};

enum class ProcRole : uint8_t { SUPERVISOR, AGENT, SSHD };
const char* roleName(ProcRole role);

// One process in one pass. The detail fields are 0 in a cheap pass.
struct ProcFigures {
  pid_t pid = 0;
  int64_t sessionId = -1;  // agents only
  ProcRole role = ProcRole::AGENT;
  int64_t bootMs = 0;      // CLOCK_BOOTTIME when read
  uint64_t cpuTicks = 0;   // utime + stime
  uint64_t startTicks = 0;
  uint64_t rssKb = 0;
  uint32_t threads = 0;
  uint64_t pssKb = 0;
  uint64_t anonKb = 0;     // smaps_rollup's Anonymous: heap and anonymous maps, what a leak grows
  uint32_t fds = 0;
  uint32_t tcpEstablished = 0;
  uint32_t tcpCloseWait = 0;
};

struct TcpTotals {
  uint32_t established = 0;
  uint32_t closeWait = 0;
  uint32_t timeWait = 0;  // to or from a target's port (no owner)
};

struct SamplePass {
  int64_t monoMs = 0;  // when it began
  bool detail = false;
  bool last = false;                  // the one read as the run ends: its interval is arbitrary
  double passMs = 0;                  // what it cost (wall time)
  double passCpuMs = 0;               // and in CPU time of the thread that read it
  double cpuMsTotal = 0;              // the sampler's CPU time so far, every pass
  uint32_t missedSinceDetail = 0;     // ticks skipped since the previous detail pass
  uint64_t taken = 0, missed = 0;     // the run's totals so far
  bool serverKnown = false;           // a local sshd is sampled (role sshd entries, server totals)
  std::vector<ProcFigures> procs;     // supervisor, agents by session, then sshd processes
  TcpTotals tcp;                      // detail passes: supervisor + agents
};

struct SamplerConfig {
  int64_t intervalMs = 1000;
  int64_t detailMs = 10000;
  pid_t serverPid = 0;                 // the local sshd's listener; 0: none
  std::vector<uint16_t> targetPorts;  // TIME_WAIT sockets to or from these count
  uint32_t sessions = 0;
};

// The passes themselves, on whichever thread calls them (the sampler thread,
// then the loop for the last pass after that thread has stopped).
class ProcSampler {
 public:
  explicit ProcSampler(SamplerConfig config);
  ~ProcSampler();
  ProcSampler(const ProcSampler&) = delete;
  ProcSampler& operator=(const ProcSampler&) = delete;

  // agents[i]: the pid of session i's agent, 0 if none runs.
  void run(SamplePass& out, const std::vector<pid_t>& agents, bool detail);

 private:
  struct Cached {
    pid_t pid = 0;
    int fd = -1;
  };
  bool readStat(Cached& c, pid_t pid, ProcFigures& f);
  void readDetail(ProcFigures& f, bool countSockets, bool pss);
  void loadTcpTables();
  void scanServer(SamplePass& out);
  bool readServerProc(pid_t pid, SamplePass& out);
  void scanAllForServer(SamplePass& out);

  SamplerConfig config_;
  Cached self_;
  std::vector<Cached> agents_;
  std::vector<char> fileBuf_;
  std::string tableBuf_;
  std::vector<TcpRow> tcp_;  // sorted by inode
  struct ProcEntry {
    pid_t pid;
    pid_t ppid;
    bool sshd;
  };
  std::vector<ProcEntry> all_;
  std::vector<pid_t> frontier_;
  std::vector<pid_t> kids_;
  struct SshdMemory {
    pid_t pid;
    uint64_t pssKb, anonKb;
    bool operator<(const SshdMemory& o) const { return pid < o.pid; }
  };
  std::vector<SshdMemory> sshdPss_, sshdPssNext_;  // by pid: the last smaps_rollup read
  uint64_t detailPasses_ = 0;
};

// The thread: passes on the schedule, each handed to the loop through one
// pending slot (notify posts to the loop; take swaps the pass out). A pass
// is not begun while the loop has not taken the previous one: a stuck loop
// costs ticks (counted as missed), never memory.
class SamplerThread {
 public:
  SamplerThread(SamplerConfig config, int64_t startMonoMs, std::function<void()> notify);
  ~SamplerThread();  // stops and joins
  SamplerThread(const SamplerThread&) = delete;
  SamplerThread& operator=(const SamplerThread&) = delete;

  void start();
  void setAgent(uint32_t session, pid_t pid);  // pid 0: none
  // The loop: the newest pass, swapped into out (whose buffers go back to
  // the thread). False if none is pending.
  bool take(SamplePass& out);
  // Stops and joins the thread (idempotent).
  void stop();
  // After stop(): one last detail pass on the caller's thread.
  void finalPass(SamplePass& out);
  bool running() const { return thread_.joinable(); }

 private:
  void loop();

  ProcSampler sampler_;
  SampleSchedule schedule_;
  std::function<void()> notify_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool fresh_ = false;
  std::vector<pid_t> agents_;     // guarded by mu_
  std::vector<pid_t> agentsCopy_; // the thread's
  SamplePass work_, pending_;
  uint64_t taken_ = 0, missed_ = 0;
  uint32_t missedSinceDetail_ = 0;
  double cpuMsTotal_ = 0;
  std::thread thread_;
};

}  // namespace sshsoak
