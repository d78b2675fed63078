// `--hlog FILE` (run and report): the run's latency histograms as an
// HdrHistogram interval log, the text format HdrHistogram's tools
// (HistogramLogReader, HistogramLogProcessor, the plotters) read:
//
//   #[Histogram log format version 1.3]
//   #[StartTime: 1764144000.000 (seconds since epoch), Wed Nov 26 08:00:00 UTC 2026]
//   #[BaseTime: 1764144000.000 (seconds since epoch)]
//   "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//   Tag=reconnect_ms,0.000,60.000,1234.000,HISTFAAA...
//
// One tagged line per histogram (the summary's `histograms`, units in the
// tag), its interval the run's span from the base time. docs/reference.md,
// "Shards, live metrics and CI results (issue 17)".
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "shared/result.h"
#include "supervisor/analysis/histogram_codec.h"

namespace sshsoak::hlog {

std::string render(const std::map<std::string, hdr::Histogram>& histograms, double startEpochSecs, double lengthSecs,
                   const std::string& comment);

struct Entry {
  std::string tag;  // "" when the line has none
  double startSecs = 0, lengthSecs = 0, max = 0;
  hdr::Histogram histogram;
};
struct Log {
  std::optional<double> startTime, baseTime;
  std::optional<std::string> version;
  std::vector<Entry> entries;
};
// Reads the format back (comments, the legend, tagged and untagged lines);
// an error names the line and what is wrong with it.
Result<Log, std::string> parse(const std::string& text);

}  // namespace sshsoak::hlog
