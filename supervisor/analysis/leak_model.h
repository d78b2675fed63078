// The leak model: does a process of the harness (or the local sshd) grow
// while the run holds steady? Fed the resource_sample lines (and the
// agents' connected / reconnected fds) by the run model, so the live run and
// `sshsoak report` judge the same. Per process (by pid) it keeps a bounded,
// downsampled series after warm-up and fits a Theil-Sen line (the median of
// the pairwise slopes: a reconnect's transient or a step does not tilt it the
// way least squares would). docs/design.md, "The leak model", says why RSS
// and not PSS is judged.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/analysis/verdict.h"
#include "supervisor/log_line.h"

namespace sshsoak {

// A line through points, in the points' units (MB per hour for the model).
struct LineFit {
  double slope = 0;
  double intercept = 0;  // the value at x = 0
};
// Theil-Sen: the median of the slopes of all pairs with distinct x, and the
// median of y - slope x. None with fewer than two distinct x.
std::optional<LineFit> theilSen(const std::vector<std::pair<double, double>>& points);

// One point of a process's series: a bin of one or more samples.
struct LeakPoint {
  double t = 0;       // seconds since the run started: the bin's mean
  double rssMb = 0;   // means over the bin
  double anonMb = -1; // smaps_rollup's Anonymous (heap, anonymous maps); -1: the line has none
  double pssMb = 0;
  int64_t fds = 0;    // minimum over the bin (a transient does not count)
  int64_t threads = 0;
  uint32_t n = 0;     // samples in the bin
};

// A series of at most `cap` points: every sample is its own point until it
// is full; then neighbours merge pairwise and each point stands for twice as
// many samples as before. The shape survives; the memory does not grow.
class Downsampler {
 public:
  explicit Downsampler(size_t cap = 256) : cap_(cap < 4 ? 4 : cap) {}
  void add(const LeakPoint& p);
  std::vector<LeakPoint> points() const;  // with the incomplete last bin
  uint32_t samplesPerPoint() const { return perPoint_; }
  uint64_t samples() const { return samples_; }

 private:
  static LeakPoint merge(const LeakPoint& a, const LeakPoint& b);
  size_t cap_;
  uint32_t perPoint_ = 1;
  uint64_t samples_ = 0;
  std::optional<LeakPoint> pending_;  // an incomplete bin
  std::vector<LeakPoint> points_;
};

// What the model says of one process.
struct ProcessLeak {
  int64_t pid = 0;
  std::string role;  // supervisor, agent, sshd
  std::optional<uint32_t> session;
  uint64_t samples = 0;       // after warm-up
  double firstSecs = 0, lastSecs = 0;  // after warm-up, since the run started
  std::optional<LineFit> rss, pss;     // MB per hour, intercept in MB at the run's start
  std::optional<LineFit> anon;         // anonymous memory: what the verdict judges (RSS in logs without it)
  std::optional<int64_t> fdGrowth, threadGrowth;
  std::string na;             // why not fitted ("" when fitted)
  bool gone = false;          // missing from the later samples
  std::vector<LeakPoint> series;  // kept for the plots while bounded (see LeakModel)

  std::string who() const;    // "agent 3 (pid 1234)"
};

class LeakModel {
 public:
  // warmupSecs: samples before it are ignored; minFitSecs: the sampled span
  // after warm-up a fit needs (with 10 points). startNs: the run's start.
  void configure(double warmupSecs, double minFitSecs, int64_t startNs);
  bool configured() const { return startNs_.has_value(); }
  void onLine(const Json& line, const std::string& event, int64_t ns);

  // Every process's figures; the series of at most SERIES_KEPT of them (the
  // live ones and the gone ones with the worst slopes).
  std::vector<ProcessLeak> processes() const;
  // The summary's resources.leaks (docs/reference.md, "Long runs").
  Json json() const;
  // The verdict's leak inputs.
  void fill(VerdictInputs& in) const;
  double warmupSecs() const { return warmupSecs_; }
  double minFitSecs() const { return minFitSecs_; }
  uint64_t samplesTaken() const { return samplesTaken_; }
  uint64_t samplesMissed() const { return samplesMissed_; }

  static constexpr size_t POINTS_PER_PROCESS = 128;  // 24 h: an 11-minute bin; a fit is 8128 pairs
  static constexpr size_t SERIES_KEPT = 64;      // gone processes' series kept, the worst slopes first
  static constexpr size_t GONE_KEPT = 256;       // gone fitted processes' figures kept, the worst first
  // A fitted rise smaller than this over the process's span is noise (a few
  // heap pages, one malloc trim threshold), not growth: the slope is still
  // reported, but not judged. 1 MB/h shows above it after 16 minutes.
  static constexpr double NOISE_FLOOR_MB = 0.25;
  static constexpr int ABSENT_SAMPLES_GONE = 3;  // missing from this many samples in a row: gone

 private:
  struct Tracked {
    int64_t pid = 0;
    std::string role;
    std::optional<uint32_t> session;
    Downsampler series{POINTS_PER_PROCESS};
    int absent = 0;
    bool bornAfterWarmup = false;  // its first sample may precede its steady fds: skipped
    bool firstSkipped = false;
  };
  struct AgentFds {
    int64_t pid = 0;  // from agent_started; 0 when unknown
    std::optional<int64_t> first;
    std::optional<int64_t> maxReconnected;
  };
  ProcessLeak fitOf(const Tracked& t) const;
  void fillFrom(const std::vector<ProcessLeak>& all, VerdictInputs& in) const;
  void retire(Tracked&& t);

  std::optional<int64_t> startNs_;
  double warmupSecs_ = 60;
  double minFitSecs_ = 600;
  std::map<int64_t, Tracked> live_;
  std::vector<ProcessLeak> gone_;  // fitted when they went; bounded by GONE_KEPT
  uint64_t goneDropped_ = 0;       // gone processes beyond GONE_KEPT (the mildest)
  uint64_t goneUnfitted_ = 0;      // gone before a fit was possible (a reconnect's sshd): counted only
  std::map<uint32_t, AgentFds> agentFds_;  // per session: the current agent's connect fds
  std::map<uint32_t, std::pair<int64_t, std::string>> reconnectFdWorst_;  // per session: growth, who
  std::optional<int64_t> closeWait_;
  uint64_t samplesTaken_ = 0, samplesMissed_ = 0;
  int64_t unsampledMs_ = 0;         // the longest time between two samples (resource_sample's unsampled_ms)
  std::string unsampledFrom_;       // when it began (ISO)
  // fill()'s fits, kept until the next resource_sample line (processes()
  // without the series); version 0 is never cached.
  uint64_t fitsVersion_ = 1;
  mutable uint64_t fitsCacheVersion_ = 0;
  mutable std::vector<ProcessLeak> fitsCache_;
};

}  // namespace sshsoak
