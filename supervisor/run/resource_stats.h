// Resource accounting of the harness: turns /proc readings of the
// supervisor and every agent, taken on one timer, into a compact
// resource_sample line per tick and the summary's figures (mean/peak CPU,
// peak RSS and PSS, fds after warm-up and at the end, RSS growth per hour).
// Pure: the caller reads /proc and passes the readings and the time.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <vector>

#include "supervisor/log_line.h"
#include "supervisor/run/proc_sample.h"

namespace sshsoak {

// Least-squares slope of y over x; empty with fewer than two distinct x.
std::optional<double> leastSquaresSlope(const std::vector<std::pair<double, double>>& points);

struct TaggedReading {
  ProcReading reading;
  std::optional<uint32_t> sessionId;  // empty: the supervisor
};

struct Figures {
  uint32_t samples = 0;
  double cpuSum = 0, cpuPeak = 0;
  // Ticks whose whole interval lies after warm-up: the steady state, free of
  // start-up (exec, key exchange) that dominates a short run.
  uint32_t steadySamples = 0;
  double steadyCpuSum = 0;
  uint64_t rssPeakKb = 0, pssPeakKb = 0;
  std::optional<uint32_t> fdsAfterWarmup;
  uint32_t fdsEnd = 0;
  uint32_t threadsEnd = 0;
  std::vector<std::pair<double, double>> rssAfterWarmup;  // (hours since start, kB)

  void add(double runMs, int64_t warmupMs, bool steady, double cpuPct, uint64_t rssKb, uint64_t pssKb,
           uint32_t fds, uint32_t threads);
  std::optional<double> cpuMean() const;
  std::optional<double> steadyCpuMean() const;
  Json toJson() const;
};

class ResourceStats {
 public:
  ResourceStats(int64_t startMonoMs, int64_t warmupMs, long ticksPerSec);

  // One tick: every process read at monoMs. Returns the resource_sample
  // line's payload ("total" and "procs").
  Json addTick(int64_t monoMs, const std::vector<TaggedReading>& readings);

  uint32_t ticks() const { return total_.samples; }
  const Figures& total() const { return total_; }
  std::optional<double> meanTotalCpuPct() const { return total_.cpuMean(); }
  // Mean over the ticks whose interval began after warm-up; empty if none.
  std::optional<double> steadyTotalCpuPct() const { return total_.steadyCpuMean(); }
  double warmupSecs() const { return static_cast<double>(warmupMs_) / 1000.0; }
  std::optional<uint64_t> peakTotalPssKb() const;
  std::optional<uint64_t> peakTotalRssKb() const;
  Json summary() const;

 private:
  struct PerProc {
    std::optional<uint32_t> sessionId;
    uint64_t lastTicks = 0;
    int64_t lastBootMs = 0;
    Figures figures;
  };
  double cpuPct(PerProc* known, const ProcReading& r) const;

  int64_t startMonoMs_;
  int64_t warmupMs_;
  long ticksPerSec_;
  std::map<pid_t, PerProc> procs_;  // every process ever sampled, by PID
  Figures total_;
  std::optional<double> lastTickRunMs_;
};

}  // namespace sshsoak
