#include "supervisor/analysis/hlog.h"

#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>

namespace sshsoak::hlog {

namespace {

std::string seconds(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::optional<double> numberAfter(const std::string& line, const std::string& prefix) {
  if (line.rfind(prefix, 0) != 0) return std::nullopt;
  try {
    return std::stod(line.substr(prefix.size()));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

std::string render(const std::map<std::string, hdr::Histogram>& histograms, double startEpochSecs, double lengthSecs,
                   const std::string& comment) {
  std::string out = "#[Histogram log format version 1.3]\n";
  char date[64] = "";
  time_t t = static_cast<time_t>(startEpochSecs);
  tm utc{};
  if (::gmtime_r(&t, &utc) != nullptr) std::strftime(date, sizeof date, "%a %b %d %H:%M:%S UTC %Y", &utc);
  out += "#[StartTime: " + seconds(startEpochSecs) + " (seconds since epoch), " + date + "]\n";
  out += "#[BaseTime: " + seconds(startEpochSecs) + " (seconds since epoch)]\n";
  if (!comment.empty()) out += "#[" + comment + "]\n";
  out += "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";
  for (const auto& [tag, h] : histograms) {
    out += "Tag=" + tag + ",0.000," + seconds(lengthSecs) + "," + seconds(static_cast<double>(h.max())) + "," +
           hdr::toBase64(h) + "\n";
  }
  return out;
}

Result<Log, std::string> parse(const std::string& text) {
  Log log;
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    auto where = [&](const std::string& why) { return "line " + std::to_string(n) + ": " + why; };
    if (line[0] == '#') {
      if (auto v = numberAfter(line, "#[StartTime: ")) log.startTime = v;
      if (auto v = numberAfter(line, "#[BaseTime: ")) log.baseTime = v;
      const std::string versionPrefix = "#[Histogram log format version ";
      if (line.rfind(versionPrefix, 0) == 0 && line.back() == ']') {
        log.version = line.substr(versionPrefix.size(), line.size() - versionPrefix.size() - 1);
      }
      continue;
    }
    if (line[0] == '"') continue;  // the legend
    Entry e;
    std::string rest = line;
    if (rest.rfind("Tag=", 0) == 0) {
      auto comma = rest.find(',');
      if (comma == std::string::npos) return fail(where("a tag without the fields after it"));
      e.tag = rest.substr(4, comma - 4);
      rest = rest.substr(comma + 1);
    }
    std::vector<std::string> parts;
    std::stringstream fields(rest);
    std::string part;
    while (std::getline(fields, part, ',')) parts.push_back(part);
    if (parts.size() != 4) return fail(where("expected start,length,max,histogram; found " + std::to_string(parts.size()) + " fields"));
    try {
      e.startSecs = std::stod(parts[0]);
      e.lengthSecs = std::stod(parts[1]);
      e.max = std::stod(parts[2]);
    } catch (const std::exception&) {
      return fail(where("start, length or max is not a number"));
    }
    auto h = hdr::fromBase64(parts[3]);
    if (!h) return fail(where("histogram: " + h.error()));
    e.histogram = std::move(*h);
    log.entries.push_back(std::move(e));
  }
  return log;
}

}  // namespace sshsoak::hlog
