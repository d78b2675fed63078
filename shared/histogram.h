// A latency histogram that keeps every value to within 1 % at any size, in
// fixed memory, and merges exactly: HdrHistogram's log-linear counts array
// (Gil Tene's HdrHistogram, the layout its .hlog files carry) with lowest
// discernible value 1, two significant figures (256 sub-buckets, half of
// them per power of two above the first) and values up to 2^36 (µs: 19 h).
// Agents record into one and send its non-zero counts; readers merge the
// counts of any number of intervals, agents or shards and take percentiles
// of the merge, never an average of percentiles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sshsoak {

class LatencyHistogram {
 public:
  static constexpr int SUB_BUCKET_HALF_COUNT_MAGNITUDE = 7;
  static constexpr uint64_t SUB_BUCKET_HALF_COUNT = 1u << SUB_BUCKET_HALF_COUNT_MAGNITUDE;  // 128
  static constexpr uint64_t SUB_BUCKET_COUNT = 2 * SUB_BUCKET_HALF_COUNT;                  // 256
  static constexpr uint64_t HIGHEST_TRACKABLE = uint64_t{1} << 36;
  static constexpr int BUCKET_COUNT = 30;  // 256 << 29 > 2^36
  static constexpr size_t COUNTS_LENGTH = (BUCKET_COUNT + 1) * SUB_BUCKET_HALF_COUNT;  // 3968

  LatencyHistogram();

  // A value above HIGHEST_TRACKABLE is recorded as HIGHEST_TRACKABLE.
  void record(uint64_t value, uint64_t count = 1);
  // HdrHistogram's recordValueWithExpectedInterval: a value longer than the
  // interval at which values were expected also records the values a
  // closed-loop tester would have missed meanwhile (value - interval,
  // value - 2 x interval, ...), undoing coordinated omission after the fact.
  void recordCorrected(uint64_t value, uint64_t expectedInterval);
  void merge(const LatencyHistogram& other);
  // Adds a count at a counts-array index (from the wire or a log); false,
  // and nothing added, if the index is out of range.
  bool addAtIndex(size_t index, uint64_t count);
  void reset();

  uint64_t count() const { return total_; }
  bool empty() const { return total_ == 0; }
  // HdrHistogram's getValueAtPercentile (pct in 0..100): the highest value
  // equivalent to the one at that rank; 0 if empty.
  uint64_t valueAtPercentile(double pct) const;
  uint64_t min() const;  // lowest equivalent value of the smallest recorded; 0 if empty
  uint64_t max() const;  // highest equivalent value of the largest recorded; 0 if empty
  double mean() const;   // of the values' median equivalents; 0 if empty

  // Calls f(index, count) for each non-zero count, in index order.
  template <typename F>
  void forEachNonZero(F&& f) const {
    for (size_t i = 0; i < COUNTS_LENGTH; ++i) {
      if (counts_[i] != 0) f(i, counts_[i]);
    }
  }

  static size_t indexOf(uint64_t value);
  static uint64_t lowestEquivalent(size_t index);
  static uint64_t highestEquivalent(size_t index);

 private:
  std::vector<uint64_t> counts_;
  uint64_t total_ = 0;
};

}  // namespace sshsoak
