// The run's statistics, defined once: every reader (live summary, status
// line, result table, HTML report, benchmarks) calls these.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sshsoak {

// Nearest-rank on the sorted values at index floor(n * q), clamped: the
// same figure the predecessor's one-liner prints from the log
// (times.sort(); p95 = times[int(len * 0.95)]). Empty input: no figure.
std::optional<int64_t> percentile(std::vector<int64_t> values, double q);

// part / whole in per cent with one decimal; no figure when whole is 0
// (nothing to recover from is not 0 % recovered).
std::optional<double> ratePct(uint64_t part, uint64_t whole);

// How a figure is written for people (console, Markdown, verdict notes):
// whole numbers without decimals (counts stay counts), the rest with one.
std::string figureText(double v);
// For figures that are often below 1 (ratios, per-job figures, a reuse
// rate, ms): whole numbers without decimals, below 100 three significant
// digits (0.04, 1.76, 11.5), from 100 as figureText.
std::string preciseText(double v);

}  // namespace sshsoak
