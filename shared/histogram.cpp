#include "shared/histogram.h"

#include <algorithm>
#include <cmath>

namespace sshsoak {

namespace {

constexpr int LEADING_ZERO_COUNT_BASE = 64 - LatencyHistogram::SUB_BUCKET_HALF_COUNT_MAGNITUDE - 1;
constexpr uint64_t SUB_BUCKET_MASK = LatencyHistogram::SUB_BUCKET_COUNT - 1;

int bucketOf(uint64_t value) { return LEADING_ZERO_COUNT_BASE - __builtin_clzll(value | SUB_BUCKET_MASK); }

// The bucket and sub-bucket of a counts-array index (HdrHistogram's valueFromIndex).
void split(size_t index, int& bucket, uint64_t& subBucket) {
  bucket = static_cast<int>(index >> LatencyHistogram::SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1;
  subBucket = (index & (LatencyHistogram::SUB_BUCKET_HALF_COUNT - 1)) + LatencyHistogram::SUB_BUCKET_HALF_COUNT;
  if (bucket < 0) {
    subBucket -= LatencyHistogram::SUB_BUCKET_HALF_COUNT;
    bucket = 0;
  }
}

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(COUNTS_LENGTH, 0) {}

size_t LatencyHistogram::indexOf(uint64_t value) {
  value = std::min(value, HIGHEST_TRACKABLE);
  int bucket = bucketOf(value);
  uint64_t subBucket = value >> bucket;
  return (static_cast<size_t>(bucket + 1) << SUB_BUCKET_HALF_COUNT_MAGNITUDE) + subBucket - SUB_BUCKET_HALF_COUNT;
}

uint64_t LatencyHistogram::lowestEquivalent(size_t index) {
  int bucket = 0;
  uint64_t subBucket = 0;
  split(index, bucket, subBucket);
  return subBucket << bucket;
}

uint64_t LatencyHistogram::highestEquivalent(size_t index) {
  int bucket = 0;
  uint64_t subBucket = 0;
  split(index, bucket, subBucket);
  // The range's width: 2^bucket (the first 256 values are exact).
  return (subBucket << bucket) + (uint64_t{1} << bucket) - 1;
}

void LatencyHistogram::record(uint64_t value, uint64_t count) {
  counts_[indexOf(value)] += count;
  total_ += count;
}

void LatencyHistogram::recordCorrected(uint64_t value, uint64_t expectedInterval) {
  record(value);
  if (expectedInterval == 0 || value <= expectedInterval) return;
  for (uint64_t missing = value - expectedInterval; missing >= expectedInterval; missing -= expectedInterval) {
    record(missing);
  }
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < COUNTS_LENGTH; ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
}

bool LatencyHistogram::addAtIndex(size_t index, uint64_t count) {
  if (index >= COUNTS_LENGTH) return false;
  counts_[index] += count;
  total_ += count;
  return true;
}

void LatencyHistogram::reset() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
}

uint64_t LatencyHistogram::valueAtPercentile(double pct) const {
  if (total_ == 0) return 0;
  pct = std::clamp(pct, 0.0, 100.0);
  auto rank = static_cast<uint64_t>(std::llround(pct / 100.0 * static_cast<double>(total_)));
  rank = std::max<uint64_t>(rank, 1);
  uint64_t seen = 0;
  for (size_t i = 0; i < COUNTS_LENGTH; ++i) {
    seen += counts_[i];
    if (seen >= rank) return highestEquivalent(i);
  }
  return max();
}

uint64_t LatencyHistogram::min() const {
  for (size_t i = 0; i < COUNTS_LENGTH; ++i) {
    if (counts_[i] != 0) return lowestEquivalent(i);
  }
  return 0;
}

uint64_t LatencyHistogram::max() const {
  for (size_t i = COUNTS_LENGTH; i-- > 0;) {
    if (counts_[i] != 0) return highestEquivalent(i);
  }
  return 0;
}

double LatencyHistogram::mean() const {
  if (total_ == 0) return 0;
  double sum = 0;
  forEachNonZero([&](size_t i, uint64_t c) {
    double mid = (static_cast<double>(lowestEquivalent(i)) + static_cast<double>(highestEquivalent(i))) / 2.0;
    sum += mid * static_cast<double>(c);
  });
  return sum / static_cast<double>(total_);
}

}  // namespace sshsoak
