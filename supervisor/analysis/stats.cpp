#include "supervisor/analysis/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sshsoak {

std::optional<int64_t> percentile(std::vector<int64_t> values, double q) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  size_t i = static_cast<size_t>(std::floor(static_cast<double>(values.size()) * q));
  return values[std::min(i, values.size() - 1)];
}

std::optional<double> ratePct(uint64_t part, uint64_t whole) {
  if (whole == 0) return std::nullopt;
  return std::round(1000.0 * static_cast<double>(part) / static_cast<double>(whole)) / 10.0;
}

std::string figureText(double v) {
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string preciseText(double v) {
  if (v == std::floor(v) || std::fabs(v) >= 100) return figureText(v);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace sshsoak
