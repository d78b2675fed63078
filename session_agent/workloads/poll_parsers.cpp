#include "session_agent/workloads/poll_parsers.h"

#include <charconv>
#include <vector>

namespace sshsoak::agent {

namespace {

std::vector<std::string_view> splitWords(std::string_view line) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

std::vector<std::string_view> splitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  return lines;
}

Failed<SshError> parseError(std::string message) {
  return fail(SshError{wire::FailureCategory::PARSE, std::move(message)});
}

template <typename T>
bool toNumber(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

Result<CpuTimes, SshError> parseProcStat(std::string_view text) {
  for (std::string_view line : splitLines(text)) {
    auto words = splitWords(line);
    if (words.empty() || words[0] != "cpu") continue;
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest
    // time is already inside user and nice, so only the first 8 count.
    if (words.size() < 5) return parseError("/proc/stat: cpu line has too few fields");
    CpuTimes t;
    for (size_t i = 1; i < words.size() && i <= 8; ++i) {
      uint64_t v = 0;
      if (!toNumber(words[i], v)) {
        return parseError("/proc/stat: not a number: '" + std::string(words[i]) + "'");
      }
      t.total += v;
      if (i == 4 || i == 5) t.idle += v;
    }
    if (t.total == 0) return parseError("/proc/stat: cpu line is all zero");
    return t;
  }
  return parseError("/proc/stat: no aggregate cpu line");
}

double cpuBusyPct(const CpuTimes& now, const std::optional<CpuTimes>& before) {
  uint64_t total = now.total, idle = now.idle;
  if (before && now.total > before->total && now.idle >= before->idle) {
    total = now.total - before->total;
    idle = now.idle - before->idle;
  }
  if (total == 0 || idle > total) return 0.0;
  return 100.0 * static_cast<double>(total - idle) / static_cast<double>(total);
}

Result<double, SshError> parseMemUsedPct(std::string_view text) {
  std::optional<uint64_t> total, available;
  for (std::string_view line : splitLines(text)) {
    auto words = splitWords(line);
    if (words.size() < 2) continue;
    uint64_t v = 0;
    if (words[0] == "MemTotal:" && toNumber(words[1], v)) total = v;
    if (words[0] == "MemAvailable:" && toNumber(words[1], v)) available = v;
  }
  if (!total || *total == 0) return parseError("/proc/meminfo: no MemTotal");
  if (!available) return parseError("/proc/meminfo: no MemAvailable");
  if (*available > *total) return parseError("/proc/meminfo: MemAvailable exceeds MemTotal");
  return 100.0 * static_cast<double>(*total - *available) / static_cast<double>(*total);
}

Result<double, SshError> parseDfUsedPct(std::string_view text) {
  auto lines = splitLines(text);
  if (lines.empty() || splitWords(lines[0]).empty() || splitWords(lines[0])[0] != "Filesystem") {
    return parseError("df: no header line");
  }
  // A long device name may push the figures onto a line of their own, so
  // take the Use% word of the last data line.
  for (size_t i = lines.size(); i-- > 1;) {
    auto words = splitWords(lines[i]);
    for (auto w : words) {
      if (w.size() >= 2 && w.back() == '%') {
        int pct = 0;
        if (!toNumber(w.substr(0, w.size() - 1), pct) || pct < 0 || pct > 100) {
          return parseError("df: bad Use% '" + std::string(w) + "'");
        }
        return static_cast<double>(pct);
      }
    }
  }
  return parseError("df: no Use% figure");
}

}  // namespace sshsoak::agent
