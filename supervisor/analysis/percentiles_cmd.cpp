#include "supervisor/analysis/percentiles_cmd.h"

#include <charconv>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string_view>

#include "supervisor/analysis/stats.h"
#include "supervisor/exit_codes.h"

namespace sshsoak::percentiles_cmd {

namespace {

constexpr const char* USAGE_TEXT = "usage: sshsoak percentiles Q [Q...] < VALUES (Q in [0, 1], integers one per line)";

// The whole of text as a T, or nothing.
template <typename T>
std::optional<T> parseAll(std::string_view text) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && std::strchr(" \t\r", s.front())) s.remove_prefix(1);
  while (!s.empty() && std::strchr(" \t\r", s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string key(double q) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "p%g", q * 100.0);
  return buf;
}

Json toJson(const std::vector<int64_t>& values, const std::vector<double>& quantiles) {
  Json j;
  j["n"] = values.size();
  for (double q : quantiles) {
    auto v = percentile(values, q);
    j[key(q)] = v ? Json(*v) : Json(nullptr);
  }
  return j;
}

int main(int argc, const char* const* argv) {
  std::vector<double> quantiles;
  for (int i = 1; i < argc; ++i) {
    auto q = parseAll<double>(argv[i]);
    if (!q || !(*q >= 0.0 && *q <= 1.0)) {
      std::fprintf(stderr, "sshsoak percentiles: %s: not a quantile in [0, 1]\n%s\n", argv[i], USAGE_TEXT);
      return exit_code::USAGE;
    }
    quantiles.push_back(*q);
  }
  if (quantiles.empty()) {
    std::fprintf(stderr, "sshsoak percentiles: name at least one quantile\n%s\n", USAGE_TEXT);
    return exit_code::USAGE;
  }
  std::vector<int64_t> values;
  size_t lineNo = 0;
  for (std::string line; std::getline(std::cin, line);) {
    ++lineNo;
    std::string_view text = trimmed(line);
    if (text.empty()) continue;
    auto v = parseAll<int64_t>(text);
    if (!v) {
      std::fprintf(stderr, "sshsoak percentiles: stdin line %zu: '%.*s' is not an integer\n", lineNo,
                   static_cast<int>(text.size()), text.data());
      return exit_code::BAD_INPUT;
    }
    values.push_back(*v);
  }
  std::printf("%s\n", toJson(values, quantiles).dump().c_str());
  return std::fflush(stdout) == 0 ? 0 : exit_code::SYSTEM;
}

}  // namespace sshsoak::percentiles_cmd
