// One run, read one line at a time and never kept whole: the run model
// (the figures of the summary, the table and the verdict, leaks included)
// plus what the HTML report draws (each session's state changes, the fault
// markers, the harness's resources binned over time). `sshsoak report`
// feeds one per run of a log as it streams the file; the live run owns one
// fed by the log's listener, so that the end-of-run table and the HTML at a
// checkpoint need not read the log back. Its memory is bounded by the run's
// sessions and state changes, not by its length.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/analysis/run_model.h"

namespace sshsoak {

// A series of (t, value) in at most `cap` bins: each bin keeps the min, max
// and mean of its values; when full, neighbours merge pairwise.
class BinnedSeries {
 public:
  struct Bin {
    double t = 0;  // mean time
    double min = 0, max = 0, mean = 0;
    uint32_t n = 0;
  };
  explicit BinnedSeries(size_t cap = 512) : cap_(cap < 4 ? 4 : cap) {}
  void add(double t, double v);
  std::vector<Bin> bins() const;  // with the incomplete last bin
  bool empty() const { return bins_.empty() && !pending_; }

 private:
  static Bin merge(const Bin& a, const Bin& b);
  size_t cap_;
  uint32_t perBin_ = 1;
  std::optional<Bin> pending_;
  std::vector<Bin> bins_;
};

class RunAccumulator {
 public:
  struct Segment {
    double from = 0, to = 0;  // seconds since the run's first line
    SessionState state = SessionState::STARTING;
  };
  static void halve(std::vector<Segment>& list);
  struct Marker {
    double t = 0;
    std::string what;
  };
  static constexpr size_t MAX_MARKERS = 200;
  // Per session; when full, neighbours merge pairwise (1000 sessions: 6 MB at most).
  static constexpr size_t MAX_SEGMENTS_PER_SESSION = 256;

  explicit RunAccumulator(const std::vector<std::string>& hosts = {}, uint32_t firstId = 0);

  void onLine(const Json& line);
  // The live run's accumulator starts listening after run_started is
  // written: it takes the run's id and start from that line (the run model
  // is configured from the options, RunModel::configureWorkload).
  void noteRunStarted(const Json& runStarted);

  RunModel& model() { return model_; }
  const RunModel& model() const { return model_; }

  const std::string& runId() const { return runId_; }
  void setRunId(std::string id) { runId_ = std::move(id); }
  uint64_t lineCount() const { return lines_; }
  std::optional<int64_t> firstNs() const { return firstNs_; }
  int64_t lastNs() const { return lastNs_; }
  double spanSecs() const { return firstNs_ ? static_cast<double>(lastNs_ - *firstNs_) / 1e9 : 0; }

  // Each session's closed segments, and the open one up to `until`.
  std::map<uint32_t, std::vector<Segment>> segments(double until) const;
  const std::vector<Marker>& markers() const { return markers_; }
  const BinnedSeries& totalPssMb() const { return pssMb_; }
  const BinnedSeries& totalRssMb() const { return rssMb_; }
  const BinnedSeries& totalCpuPct() const { return cpuPct_; }
  // The adaptive pacer's rate (pacer_rate lines), for its chart.
  const BinnedSeries& pacerRate() const { return pacerRate_; }

  // The last checkpoint line (the summary's fields so far), for a run
  // without a summary.
  const std::optional<Json>& lastCheckpoint() const { return checkpoint_; }
  // The run's run_started line (or a log_continued line's copy of it): its
  // settings, for the CI results (ci_results.h). None when the log lost it.
  const std::optional<Json>& runStarted() const { return runStarted_; }
  // The log's part with run_started is gone (rotated away): the run starts
  // from a log_continued line's copy of it.
  bool startMissing() const { return startMissing_; }
  // Issue 17: the shard the run's lines name (`shard`, `shards`), if any.
  struct Shard {
    uint32_t index = 0, count = 0;
  };
  const std::optional<Shard>& shard() const { return shard_; }
  void setStartMissing() { startMissing_ = true; }

 private:
  RunModel model_;
  std::string runId_;
  uint64_t lines_ = 0;
  std::optional<int64_t> firstNs_;
  int64_t lastNs_ = 0;
  std::map<uint32_t, std::vector<Segment>> segs_;
  std::map<uint32_t, Segment> open_;  // `to` unused
  std::vector<Marker> markers_;
  BinnedSeries pssMb_, rssMb_, cpuPct_, pacerRate_;
  std::optional<Json> checkpoint_;
  std::optional<Json> runStarted_;
  bool startMissing_ = false;
  std::optional<Shard> shard_;
};

}  // namespace sshsoak
