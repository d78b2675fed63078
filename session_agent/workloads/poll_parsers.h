// Parsers for the exec-poll outputs (`cat /proc/stat`, `cat /proc/meminfo`,
// `df -h /`). Remote output is untrusted: a truncated or garbled one gives
// an error value (category PARSE), never a crash or a made-up figure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "session_agent/ssh/error.h"
#include "shared/result.h"

namespace sshsoak::agent {

// The aggregate "cpu" line of /proc/stat, in clock ticks.
struct CpuTimes {
  uint64_t total = 0;
  uint64_t idle = 0;  // idle + iowait
};
Result<CpuTimes, SshError> parseProcStat(std::string_view text);

// Busy share between two samples; with no previous sample, since boot.
double cpuBusyPct(const CpuTimes& now, const std::optional<CpuTimes>& before);

// (MemTotal - MemAvailable) / MemTotal.
Result<double, SshError> parseMemUsedPct(std::string_view text);

// The Use% of the filesystem holding /.
Result<double, SshError> parseDfUsedPct(std::string_view text);

}  // namespace sshsoak::agent
