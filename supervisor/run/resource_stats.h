// Resource accounting of the harness: turns the sampler's passes (sampler.h)
// over the supervisor, every agent and the local sshd's processes into one
// resource_sample line per detail pass and the summary's figures (mean/peak
// CPU, peak RSS and PSS, fds after warm-up and at the end, RSS growth per
// hour). Runs on the loop; pure: the sampler reads /proc.
//
// Memory is bounded for any length of run: per process, running figures
// only (no per-tick history; the leak fits are the analysis's, from the
// lines); entries of agents that died are capped (the oldest are retired
// and counted).
#pragma once

#include <sys/types.h>

#include <array>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "supervisor/log_line.h"
#include "supervisor/run/sampler.h"

namespace sshsoak {

// Least-squares slope of y over x; empty with fewer than two distinct x.
std::optional<double> leastSquaresSlope(const std::vector<std::pair<double, double>>& points);

// The same slope kept online in O(1) memory (Welford's co-moments).
struct OnlineSlope {
  uint64_t n = 0;
  double meanX = 0, meanY = 0, m2x = 0, cxy = 0;
  void add(double x, double y);
  std::optional<double> slope() const;
};

struct Figures {
  uint32_t samples = 0;  // cheap and detail passes that saw the process
  uint32_t cpuSamples = 0;
  double cpuSum = 0, cpuPeak = 0;
  // Passes whose whole interval lies after warm-up: the steady state, free
  // of start-up (exec, key exchange) that dominates a short run.
  uint32_t steadySamples = 0;
  double steadyCpuSum = 0;
  uint64_t rssPeakKb = 0, pssPeakKb = 0;
  std::optional<uint32_t> fdsAfterWarmup;
  uint32_t fdsEnd = 0;
  uint32_t threadsEnd = 0;
  OnlineSlope rssGrowth;  // (hours since start, kB) after warm-up

  // Every pass: CPU over the interval (none for the run's last pass, whose
  // interval may be a few ms: a clock tick in it would read as a peak),
  // RSS, threads.
  void add(double runMs, int64_t warmupMs, bool steady, std::optional<double> cpuPct, uint64_t rssKb,
           uint32_t threads);
  // Detail passes: PSS and fds.
  void addDetail(double runMs, int64_t warmupMs, uint64_t pssKb, uint32_t fds);
  std::optional<double> cpuMean() const;
  std::optional<double> steadyCpuMean() const;
  Json toJson() const;
};

// One role's processes (the supervisor, the agents summed, the local sshd's
// processes summed) as the newest pass saw them: the live metrics' process
// gauges. PSS and fds come from the newest detail pass (a cheap pass reads
// neither); the sshd's processes are seen by detail passes only.
struct RoleFigures {
  uint32_t processes = 0;
  double cpuPct = 0;  // % of one core over the pass's interval
  uint64_t rssKb = 0;
  uint64_t pssKb = 0;
  uint32_t fds = 0;
  uint32_t threads = 0;
  bool seen = false;  // a pass (a detail pass for the sshd) has been taken
};

class ResourceStats {
 public:
  // maxDeadAgents: entries of exited agents kept for the summary; beyond
  // it the oldest are retired (counted in agents_retired).
  ResourceStats(int64_t startMonoMs, int64_t warmupMs, long ticksPerSec, size_t maxDeadAgents = 256);

  // One pass. A detail pass returns the resource_sample line's payload
  // (total, procs, server, tcp, missed, pass_ms).
  std::optional<Json> addPass(const SamplePass& pass);
  // The sampler starts now: unsampled time is counted from here, not from the
  // run's start (spawning 1000 agents is not a hole in the sampling).
  void samplingStarts(int64_t monoMs) { lastPassMono_ = monoMs; }

  uint32_t ticks() const { return total_.samples; }
  uint64_t samplesTaken() const { return taken_; }
  uint64_t samplesMissed() const { return missed_; }
  const Figures& total() const { return total_; }
  std::optional<double> meanTotalCpuPct() const { return total_.cpuMean(); }
  // Mean over the passes whose interval began after warm-up; empty if none.
  std::optional<double> steadyTotalCpuPct() const { return total_.steadyCpuMean(); }
  double warmupSecs() const { return static_cast<double>(warmupMs_) / 1000.0; }
  std::optional<uint64_t> peakTotalPssKb() const;
  std::optional<uint64_t> peakTotalRssKb() const;
  // The newest pass's totals, for the status line.
  double lastCpuPct() const { return lastCpuPct_; }
  uint64_t lastRssKb() const { return lastRssKb_; }
  uint64_t lastPssKb() const { return lastPssKb_; }
  size_t trackedProcesses() const { return procs_.size(); }
  const RoleFigures& lastOf(ProcRole role) const { return byRole_[static_cast<size_t>(role)]; }
  Json summary() const;

 private:
  struct Last {
    uint64_t ticks = 0;
    int64_t bootMs = 0;
  };
  struct PerProc {
    std::optional<uint32_t> sessionId;
    Last pass;  // the previous pass that saw it: CPU per pass
    Last line;  // the previous resource_sample line: CPU per line
    bool inLine = false;
    uint64_t lastSeen = 0;  // pass number
    Figures figures;
  };
  double cpuPct(const Last* last, const ProcFigures& r) const;
  void retireDead(size_t live);

  int64_t startMonoMs_;
  int64_t warmupMs_;
  long ticksPerSec_;
  size_t maxDeadAgents_;
  std::map<pid_t, PerProc> procs_;  // supervisor and agents, by PID
  std::unordered_map<pid_t, Last> sshdPrev_, sshdNext_;  // the local sshd's processes at the previous line
  uint64_t passes_ = 0;
  uint64_t retired_ = 0;
  uint64_t taken_ = 0, missed_ = 0;
  double samplerCpuMs_ = 0;
  Figures total_;
  std::optional<double> lastPassRunMs_;
  // The longest time between two passes since the previous resource_sample
  // line (the first from the run's start), and when it began (CLOCK_REALTIME
  // ns): a supervisor that could not
  // sample for a while (stopped, stalled) says so in its lines.
  std::optional<int64_t> lastPassMono_;
  int64_t gapMs_ = 0;
  int64_t gapFromWallNs_ = 0;
  double lastCpuPct_ = 0;
  uint64_t lastRssKb_ = 0, lastPssKb_ = 0;
  std::array<RoleFigures, 3> byRole_{};  // by ProcRole
};

}  // namespace sshsoak
