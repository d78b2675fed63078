"""Latency histograms from the JSONL log (churn_stats' "latency_us"): merged
by adding their counts, percentiles taken of the merge, never an average of
percentiles.

A line carries each histogram as {"n", "p50", "p90", "p99", "p999", "max",
"counts": [index, count, ...]} (supervisor/log_line.cpp, histogramJson), in
HdrHistogram's counts-array layout (shared/histogram.h). Merging is exact
whatever the layout: counts at the same index add. Reading a value back
from an index needs the layout, so it is written out here; it cannot drift
from the C++ one unnoticed: merge() checks, for every histogram it is given,
that the figures it computes equal the ones the line carries (computed by
LatencyHistogram itself), and raises if one does not.
"""
import math

# shared/histogram.h: lowest discernible 1, 2 significant figures.
SUB_BUCKET_HALF_COUNT_MAGNITUDE = 7
SUB_BUCKET_HALF_COUNT = 1 << SUB_BUCKET_HALF_COUNT_MAGNITUDE


def highest_equivalent(index):
    """LatencyHistogram::highestEquivalent: the top of the index's range."""
    bucket = (index >> SUB_BUCKET_HALF_COUNT_MAGNITUDE) - 1
    sub = (index & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT
    if bucket < 0:
        sub -= SUB_BUCKET_HALF_COUNT
        bucket = 0
    return (sub << bucket) + (1 << bucket) - 1


class Histogram:
    def __init__(self):
        self.counts = {}
        self.total = 0

    def add_counts(self, flat):
        for i in range(0, len(flat) - 1, 2):
            self.counts[flat[i]] = self.counts.get(flat[i], 0) + flat[i + 1]
            self.total += flat[i + 1]

    def percentile(self, pct):
        """LatencyHistogram::valueAtPercentile (pct 0..100); None if empty."""
        if self.total == 0:
            return None
        rank = max(1, math.floor(min(max(pct, 0.0), 100.0) / 100.0 * self.total + 0.5))  # llround
        seen = 0
        for i in sorted(self.counts):
            seen += self.counts[i]
            if seen >= rank:
                return highest_equivalent(i)
        return self.max()

    def max(self):
        return highest_equivalent(max(self.counts)) if self.counts else None

    def figures(self, scale=1.0, digits=1):
        """n, p50, p90, p99, p99.9, max, divided by scale (1000: µs -> ms)."""
        def f(v):
            return None if v is None else round(v / scale, digits)
        return {"n": self.total, "p50": f(self.percentile(50)), "p90": f(self.percentile(90)),
                "p99": f(self.percentile(99)), "p999": f(self.percentile(99.9)), "max": f(self.max())}


def merge(histograms):
    """One Histogram of many line histograms (dicts as in the log), each
    checked against the figures the line carries."""
    out = Histogram()
    for h in histograms:
        one = Histogram()
        one.add_counts(h.get("counts", []))
        mine = {"n": one.total, "p50": one.percentile(50) or 0, "p99": one.percentile(99) or 0,
                "max": one.max() or 0}
        theirs = {k: h.get(k) for k in mine}
        if mine != theirs:
            raise RuntimeError(f"bench/driver/hdr.py disagrees with the log's histogram figures: {mine} vs {theirs}; "
                               "has shared/histogram.h's layout changed?")
        out.add_counts(h.get("counts", []))
    return out
