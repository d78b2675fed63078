// Histograms in the form HdrHistogram's own tools read: the V2 compressed
// encoding (a big-endian header, the counts array as ZigZag LEB128 words with
// runs of zeros as one negative word, all deflated with zlib) and base64 of
// it, which is what the summary's `histograms`, `report --merge` and `--hlog`
// carry (docs/reference.md, "Shards, live metrics and CI results").
//
// A histogram here is its parameters and its non-zero counts by
// counts-array index, so that a layout whose array would be millions long
// (5 significant figures, the exact reconnect times) costs what it holds.
// The lowest discernible value is always 1 (unit magnitude 0), as in
// shared/histogram.h.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "shared/histogram.h"
#include "shared/result.h"

namespace sshsoak::hdr {

// HdrHistogram's counts-array layout for lowest value 1, a number of
// significant figures (1..5) and a highest trackable value.
class Layout {
 public:
  static std::optional<Layout> of(int significantFigures, int64_t highestTrackable);
  int significantFigures() const { return sigfigs_; }
  int64_t highestTrackable() const { return highest_; }
  uint32_t countsLength() const { return countsLength_; }
  uint32_t indexOf(uint64_t value) const;  // value clamped to the highest trackable
  uint64_t lowestEquivalent(uint32_t index) const;
  uint64_t highestEquivalent(uint32_t index) const;
  bool operator==(const Layout& o) const { return sigfigs_ == o.sigfigs_ && highest_ == o.highest_; }

 private:
  int sigfigs_ = 2;
  int64_t highest_ = 0;
  int halfMagnitude_ = 0;  // log2 of half the sub-bucket count
  uint64_t subBucketCount_ = 0;
  uint64_t subBucketMask_ = 0;
  uint32_t countsLength_ = 0;
};

// The layout of shared/histogram.h's LatencyHistogram (2 figures, 2^36).
Layout latencyLayout();
// Exact for whole values below 262,144 (5 figures: HdrHistogram's finest):
// the reconnect times in ms, whose percentiles a single run takes
// nearest-rank from the values themselves (stats.h), so a merge gives the
// same figure to the ms.
Layout exactLayout();

struct Histogram {
  Layout layout = latencyLayout();
  std::map<uint32_t, uint64_t> counts;  // index -> count, no zeros
  uint64_t total = 0;

  void record(uint64_t value, uint64_t count = 1);
  // False (nothing added) when the layouts differ.
  bool merge(const Histogram& other);
  bool empty() const { return total == 0; }
  // The highest equivalent value of the largest recorded; 0 if empty.
  uint64_t max() const;
  // Nearest rank, as stats.h's percentile(): the value at rank floor(n * q)
  // (clamped) of the sorted values, read as its bucket's lowest value (the
  // value itself where the layout is exact). Empty: none.
  std::optional<int64_t> nearestRank(double q) const;
};

Histogram fromLatency(const LatencyHistogram& h);
// Only for the latency layout; nullopt otherwise.
std::optional<LatencyHistogram> toLatency(const Histogram& h);

// The V2 compressed encoding, and back. A decode error names what is wrong.
std::string encodeCompressed(const Histogram& h);
Result<Histogram, std::string> decodeCompressed(std::string_view bytes);

std::string base64Encode(std::string_view bytes);
std::optional<std::string> base64Decode(std::string_view text);

// base64 of the compressed encoding: the summary's and the .hlog's form.
std::string toBase64(const Histogram& h);
Result<Histogram, std::string> fromBase64(std::string_view text);

}  // namespace sshsoak::hdr
