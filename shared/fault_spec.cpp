#include "shared/fault_spec.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace sshsoak {

namespace {

// Bounds that keep every product below int64 overflow and every loop short.
constexpr int64_t MAX_DURATION_MS = int64_t{30} * 24 * 3600 * 1000;  // 30 days
constexpr uint64_t MAX_BYTES = uint64_t{1} << 50;

struct KindInfo {
  FaultKind kind;
  std::string_view name;
  std::string_view example;  // a correct SPEC of this kind, for error messages
};

constexpr KindInfo KINDS[] = {
    {FaultKind::LATENCY, "latency", "latency=200ms~50ms@30s-90s@0-4"},
    {FaultKind::BANDWIDTH, "bandwidth", "bandwidth=1mbit,down@10s+20s"},
    {FaultKind::BLACKHOLE, "blackhole", "blackhole@20s+30s"},
    {FaultKind::RESET, "reset", "reset@40s/60s"},
    {FaultKind::TIMEOUT, "timeout", "timeout=5s@30s+20s"},
    {FaultKind::SLOW_CLOSE, "slow-close", "slow-close=2s"},
    {FaultKind::LIMIT_DATA, "limit-data", "limit-data=64KB,up@30s@0,2"},
    {FaultKind::SLICER, "slicer", "slicer=64B~16B/1ms"},
};

const KindInfo& infoOf(FaultKind kind) {
  for (const auto& k : KINDS) {
    if (k.kind == kind) return k;
  }
  return KINDS[0];
}

// A decimal number followed by one of the units (longest first), scaled.
template <typename Unit>
bool scaled(std::string_view text, const Unit* units, size_t unitCount, double max, double& out) {
  for (size_t i = 0; i < unitCount; ++i) {
    std::string_view unit = units[i].name;
    if (text.size() <= unit.size() || !text.ends_with(unit)) continue;
    std::string_view num = text.substr(0, text.size() - unit.size());
    double v = 0;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
    if (ec != std::errc() || p != num.data() + num.size() || !std::isfinite(v) || v < 0) return false;
    // Digits and one dot only: no "1e3", "inf", "+1".
    if (num.find_first_not_of("0123456789.") != std::string_view::npos) return false;
    out = v * units[i].factor;
    return out <= max;
  }
  return false;
}

struct Unit {
  std::string_view name;
  double factor;
};

constexpr Unit TIME_UNITS[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}};
constexpr Unit SIZE_UNITS[] = {{"KiB", 1024}, {"MiB", 1048576}, {"GiB", 1073741824},
                               {"KB", 1e3},   {"MB", 1e6},      {"GB", 1e9},
                               {"B", 1}};
constexpr Unit RATE_UNITS[] = {{"kbit", 1e3 / 8}, {"mbit", 1e6 / 8}, {"gbit", 1e9 / 8}, {"KiB", 1024},
                               {"MiB", 1048576},  {"KB", 1e3},       {"MB", 1e6},       {"GB", 1e9},
                               {"B", 1}};

bool durationOf(std::string_view text, int64_t& ms) {
  double v = 0;
  if (!scaled(text, TIME_UNITS, std::size(TIME_UNITS), double(MAX_DURATION_MS), v)) return false;
  ms = static_cast<int64_t>(std::llround(v));
  return true;
}

bool sizeOf(std::string_view text, uint64_t& bytes) {
  double v = 0;
  if (!scaled(text, SIZE_UNITS, std::size(SIZE_UNITS), double(MAX_BYTES), v)) return false;
  bytes = static_cast<uint64_t>(std::llround(v));
  return true;
}

bool rateOf(std::string_view text, uint64_t& bytesPerSec) {
  if (text.ends_with("/s")) text.remove_suffix(2);
  double v = 0;
  if (!scaled(text, RATE_UNITS, std::size(RATE_UNITS), double(MAX_BYTES), v)) return false;
  bytesPerSec = static_cast<uint64_t>(std::llround(v));
  return true;
}

bool wholeNumber(std::string_view s, uint32_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

std::string durationText(int64_t ms) {
  if (ms != 0 && ms % 60000 == 0) return std::to_string(ms / 60000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

std::string sizeText(uint64_t bytes) {
  if (bytes != 0 && bytes % 1000000 == 0) return std::to_string(bytes / 1000000) + "MB";
  if (bytes != 0 && bytes % 1000 == 0) return std::to_string(bytes / 1000) + "KB";
  return std::to_string(bytes) + "B";
}

std::string rateText(uint64_t bytesPerSec) {
  uint64_t bits = bytesPerSec * 8;
  if (bits != 0 && bits % 1000000 == 0) return std::to_string(bits / 1000000) + "mbit";
  if (bits != 0 && bits % 1000 == 0) return std::to_string(bits / 1000) + "kbit";
  return sizeText(bytesPerSec);
}

bool looksLikeSessions(std::string_view part) {
  return part == "all" || (!part.empty() && part.find_first_not_of("0123456789,-") == std::string_view::npos);
}

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<FaultSpec, std::string> run() {
    std::string_view rest = text_;
    std::vector<std::string_view> parts;
    for (;;) {
      auto at = rest.find('@');
      parts.push_back(rest.substr(0, at));
      if (at == std::string_view::npos) break;
      rest = rest.substr(at + 1);
    }
    if (!kindPart(parts[0])) return fail(error_);
    if (parts.size() > 3) return bad("the SPEC", std::string(text_), "has more than two '@' parts (KIND[=PARAMS][@WHEN][@SESSIONS])");
    for (size_t i = 1; i < parts.size(); ++i) {
      std::string_view part = parts[i];
      if (part.empty()) return bad("the part after '@'", "", "is empty");
      if (looksLikeSessions(part)) {
        if (i + 1 < parts.size()) {
          return bad("the WHEN part", std::string(part),
                     "is not a time: times need a unit (ms, s, m), e.g. @30s-90s; sessions come last");
        }
        if (!sessionsPart(part)) return fail(error_);
      } else {
        if (i == 2) return bad("the SESSIONS part", std::string(part), "is not a session list (e.g. @0-4, @0,3,7, @all)");
        if (!whenPart(part)) return fail(error_);
      }
    }
    if (spec_.when.everyMs > 0 && !spec_.when.lengthMs) {
      if (spec_.kind != FaultKind::RESET) {
        return bad("the WHEN part", std::string(parts[1]),
                   "repeats but has no length: give one, e.g. @30s+10s/60s (only reset may repeat without one)");
      }
      spec_.when.lengthMs = 0;
    }
    return spec_;
  }

 private:
  Failed<std::string> bad(const std::string& what, const std::string& part, const std::string& why) {
    error_ = "'" + std::string(text_) + "': " + what + (part.empty() ? "" : " '" + part + "'") + " " + why +
             "; e.g. '" + std::string(example_) + "'";
    return fail(error_);
  }

  bool kindPart(std::string_view part) {
    auto eq = part.find('=');
    std::string_view name = part.substr(0, eq);
    std::string_view params = eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1);
    const KindInfo* info = nullptr;
    for (const auto& k : KINDS) {
      if (k.name == name) info = &k;
    }
    if (info == nullptr) {
      (void)bad("the KIND", std::string(name),
                "is not a fault: use latency, bandwidth, blackhole, reset, timeout, slow-close, limit-data or slicer");
      return false;
    }
    spec_.kind = info->kind;
    example_ = info->example;
    bool hasParams = eq != std::string_view::npos;
    switch (info->kind) {
      case FaultKind::BLACKHOLE:
      case FaultKind::RESET:
        if (hasParams) return paramError(params, "takes no parameters");
        return true;
      case FaultKind::LATENCY: {
        std::string_view v = params;
        if (!direction(v)) return false;
        auto tilde = v.find('~');
        if (!durationOf(v.substr(0, tilde), spec_.delayMs) ||
            (tilde != std::string_view::npos && !durationOf(v.substr(tilde + 1), spec_.jitterMs))) {
          return paramError(params, "is not DELAY[~JITTER][,up|down] with units ms, s or m");
        }
        if (spec_.delayMs == 0 && spec_.jitterMs == 0) return paramError(params, "adds no delay");
        return true;
      }
      case FaultKind::BANDWIDTH: {
        std::string_view v = params;
        if (!direction(v)) return false;
        if (!rateOf(v, spec_.bytesPerSec) || spec_.bytesPerSec == 0) {
          return paramError(params, "is not a rate above 0 with a unit kbit, mbit, KB or MB (per second)");
        }
        return true;
      }
      case FaultKind::TIMEOUT:
      case FaultKind::SLOW_CLOSE:
        if (!durationOf(params, spec_.durationMs) || spec_.durationMs == 0) {
          return paramError(params, "is not a duration above 0 with a unit ms, s or m");
        }
        return true;
      case FaultKind::LIMIT_DATA: {
        std::string_view v = params;
        if (!direction(v)) return false;
        if (!sizeOf(v, spec_.bytes) || spec_.bytes == 0) {
          return paramError(params, "is not a size above 0 with a unit B, KB or MB");
        }
        return true;
      }
      case FaultKind::SLICER: {
        auto slash = params.find('/');
        std::string_view size = params.substr(0, slash);
        auto tilde = size.find('~');
        if (slash == std::string_view::npos || !sizeOf(size.substr(0, tilde), spec_.bytes) ||
            (tilde != std::string_view::npos && !sizeOf(size.substr(tilde + 1), spec_.bytesJitter)) ||
            !durationOf(params.substr(slash + 1), spec_.delayMs)) {
          return paramError(params, "is not SIZE[~JITTER]/PAUSE, e.g. 64B~16B/1ms");
        }
        if (spec_.bytes == 0 || spec_.bytesJitter >= spec_.bytes) {
          return paramError(params, "needs a slice size above 0 and a jitter below it");
        }
        if (spec_.bytes > 1 << 20) return paramError(params, "slices at most 1MiB");
        return true;
      }
    }
    return true;
  }

  bool paramError(std::string_view params, const std::string& why) {
    (void)bad("the PARAMS", std::string(params), why);
    return false;
  }

  // A trailing ",up" or ",down".
  bool direction(std::string_view& v) {
    auto comma = v.rfind(',');
    if (comma == std::string_view::npos) return true;
    std::string_view dir = v.substr(comma + 1);
    if (dir == "up") spec_.direction = FaultDirection::UP;
    else if (dir == "down") spec_.direction = FaultDirection::DOWN;
    else return paramError(dir, "is not a direction: use up (agent to server) or down (server to agent)");
    v = v.substr(0, comma);
    return true;
  }

  // START[-END|+LENGTH][/EVERY]
  bool whenPart(std::string_view part) {
    auto whenError = [&](const std::string& why) {
      (void)bad("the WHEN part", std::string(part), why);
      return false;
    };
    std::string_view rest = part;
    FaultWhen w;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
      if (!durationOf(rest.substr(slash + 1), w.everyMs) || w.everyMs == 0) {
        return whenError("has a period after '/' that is not a duration above 0 (units ms, s, m)");
      }
      rest = rest.substr(0, slash);
    }
    auto sep = rest.find_first_of("-+");
    if (!durationOf(rest.substr(0, sep), w.startMs)) {
      return whenError("does not start with a time from the run's start with a unit (ms, s, m), e.g. @30s");
    }
    if (sep != std::string_view::npos) {
      int64_t v = 0;
      if (!durationOf(rest.substr(sep + 1), v)) return whenError("has an end or length that is not a time with a unit");
      int64_t length = rest[sep] == '+' ? v : v - w.startMs;
      if (length <= 0) return whenError("ends before it starts");
      w.lengthMs = length;
    }
    if (w.everyMs > 0 && w.lengthMs && *w.lengthMs >= w.everyMs) {
      return whenError("is as long as its period or longer: the windows would overlap");
    }
    spec_.when = w;
    return true;
  }

  bool sessionsPart(std::string_view part) {
    if (part == "all") return true;
    auto sessionError = [&](const std::string& why) {
      (void)bad("the SESSIONS part", std::string(part), why);
      return false;
    };
    std::vector<uint32_t> ids;
    std::string_view rest = part;
    for (;;) {
      auto comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      uint32_t lo = 0, hi = 0;
      if (item.empty()) return sessionError("has an empty item (write ids and ranges between commas)");
      if (auto dash = item.find('-'); dash != std::string_view::npos) {
        if (!wholeNumber(item.substr(0, dash), lo) || !wholeNumber(item.substr(dash + 1), hi) || hi < lo) {
          return sessionError("has a bad range '" + std::string(item) + "' (LOW-HIGH)");
        }
      } else if (!wholeNumber(item, lo)) {
        return sessionError("has a bad session id '" + std::string(item) + "'");
      } else {
        hi = lo;
      }
      if (hi >= FAULT_MAX_SESSION_ID) return sessionError("names session " + std::to_string(hi) + ", beyond any run");
      // Bounded: at most FAULT_MAX_SESSION_ID ids, deduplicated below.
      if (ids.size() + (hi - lo + 1) > 2 * FAULT_MAX_SESSION_ID) return sessionError("is too long");
      for (uint32_t s = lo; s <= hi; ++s) ids.push_back(s);
      if (comma == std::string_view::npos) break;
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    spec_.sessions = std::move(ids);
    return true;
  }

  std::string_view text_;
  std::string_view example_ = KINDS[0].example;
  FaultSpec spec_;
  std::string error_;
};

}  // namespace

std::string_view faultKindName(FaultKind kind) { return infoOf(kind).name; }

bool FaultSpec::appliesTo(uint32_t session) const {
  return sessions.empty() || std::binary_search(sessions.begin(), sessions.end(), session);
}

std::string FaultSpec::text() const {
  std::string t(faultKindName(kind));
  std::string dir = direction == FaultDirection::UP ? ",up" : direction == FaultDirection::DOWN ? ",down" : "";
  switch (kind) {
    case FaultKind::LATENCY:
      t += "=" + durationText(delayMs) + (jitterMs > 0 ? "~" + durationText(jitterMs) : "") + dir;
      break;
    case FaultKind::BANDWIDTH: t += "=" + rateText(bytesPerSec) + dir; break;
    case FaultKind::TIMEOUT:
    case FaultKind::SLOW_CLOSE: t += "=" + durationText(durationMs); break;
    case FaultKind::LIMIT_DATA: t += "=" + sizeText(bytes) + dir; break;
    case FaultKind::SLICER:
      t += "=" + sizeText(bytes) + (bytesJitter > 0 ? "~" + sizeText(bytesJitter) : "") + "/" + durationText(delayMs);
      break;
    case FaultKind::BLACKHOLE:
    case FaultKind::RESET: break;
  }
  bool wholeRun = when.startMs == 0 && !when.lengthMs && when.everyMs == 0;
  if (!wholeRun) {
    t += "@" + durationText(when.startMs);
    if (when.lengthMs && *when.lengthMs > 0) t += "+" + durationText(*when.lengthMs);
    if (when.everyMs > 0) t += "/" + durationText(when.everyMs);
  }
  if (!sessions.empty()) {
    t += "@";
    // Runs of consecutive ids as ranges: "0-4,7".
    for (size_t i = 0; i < sessions.size();) {
      size_t j = i;
      while (j + 1 < sessions.size() && sessions[j + 1] == sessions[j] + 1) ++j;
      if (i > 0) t += ",";
      t += std::to_string(sessions[i]);
      if (j > i) t += "-" + std::to_string(sessions[j]);
      i = j + 1;
    }
  }
  return t;
}

Result<FaultSpec, std::string> parseFaultSpec(std::string_view text) {
  if (text.empty()) {
    return fail(std::string("'': empty; e.g. 'latency=200ms~50ms@30s-90s@0-4'"));
  }
  return Parser(text).run();
}

FaultOccurrence faultOccurrence(const FaultWhen& when, uint32_t n) {
  FaultOccurrence o;
  o.number = n;
  o.startMs = when.startMs + (when.everyMs > 0 ? int64_t{n - 1} * when.everyMs : 0);
  if (when.lengthMs) o.endMs = o.startMs + *when.lengthMs;
  return o;
}

uint32_t faultStartedBy(const FaultWhen& when, int64_t tMs) {
  if (tMs < when.startMs) return 0;
  if (when.everyMs == 0) return 1;
  int64_t n = (tMs - when.startMs) / when.everyMs + 1;
  return n > int64_t{UINT32_MAX} ? UINT32_MAX : static_cast<uint32_t>(n);
}

std::optional<FaultOccurrence> faultActiveAt(const FaultWhen& when, int64_t tMs) {
  uint32_t n = faultStartedBy(when, tMs);
  if (n == 0) return std::nullopt;
  FaultOccurrence o = faultOccurrence(when, n);
  if (o.endMs && tMs >= *o.endMs) return std::nullopt;
  return o;
}

}  // namespace sshsoak
