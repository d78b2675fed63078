// `sshsoak report --merge FILES... | DIR`: the shards of one run (--shard
// I/N, each with its own log and summary) as one run: one global summary in
// a single run's shape plus `shards`, one table with a row per shard beside
// the total, one verdict (verdict.cpp's evaluate on the merged figures), and
// a global exit code. Counts are summed; percentiles come from the shards'
// histograms added together (histogram_codec.h), never from averaging
// percentiles, so they equal those of one log holding every shard's events.
// docs/reference.md, "Shards, live metrics and CI results (issue 17)".
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "shared/result.h"
#include "supervisor/analysis/histogram_codec.h"
#include "supervisor/analysis/report.h"

namespace sshsoak::merge {

struct ShardRow {
  uint32_t index = 0;
  std::string runId;
  // complete: its summary and a passing verdict; failed: its verdict failed
  // or it ended with run_aborted; running: no summary yet (still running, or
  // killed); missing: no log names this index.
  std::string state;
  std::string source;  // its log; "" when missing
  std::string why;     // what makes it failed, running or missing
  Json summary;        // its summary line, or its figures so far; null when missing
};

struct Merged {
  std::string runId;
  uint32_t shardCount = 0;
  std::vector<ShardRow> shards;
  std::map<std::string, hdr::Histogram> histograms;  // merged, by name
  Json summary;                       // one run's summary shape + "shards" (the list) + "shard_count"
  std::vector<std::string> warnings;  // lines of another run left out, duplicates, damaged histograms
  std::vector<report::Run> runs;      // the shards' runs, for the HTML
};

// FILES as given, or every *.jsonl file of a DIR given alone (sorted).
Result<std::vector<std::string>, std::string> expandPaths(const std::vector<std::string>& paths);
// The shards among the runs read. An error when no run names a shard.
Result<Merged, std::string> merge(const report::Input& input);
// Adds histograms by name (a summary's `histograms`); a damaged one is named in *warnings.
void addHistograms(const Json& histograms, std::map<std::string, hdr::Histogram>& into, const std::string& where,
                   std::vector<std::string>* warnings);
std::string markdown(const Merged& m);
// A self-contained HTML page: the merged table and verdict, then each shard's report.
std::string html(const Merged& m);
// Every shard complete and every criterion passed.
bool passed(const Merged& m);

}  // namespace sshsoak::merge
