// One process's figures from /proc: CPU time (utime + stime), VmRSS, Pss
// (smaps_rollup), open fds and threads. Parsing is split from reading so
// the tests can feed it text.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace sshsoak {

struct StatFields {
  uint64_t cpuTicks = 0;    // utime + stime, in clock ticks (sysconf(_SC_CLK_TCK))
  uint64_t startTicks = 0;  // starttime: ticks after boot
  uint32_t threads = 0;
};

// /proc/PID/stat; the command name may hold spaces and ')' (parsed from the last ')').
std::optional<StatFields> parseProcStat(std::string_view text);
// "Key:   123 kB" lines of /proc/PID/status and /proc/PID/smaps_rollup.
std::optional<uint64_t> parseKbField(std::string_view text, std::string_view key);

struct ProcReading {
  pid_t pid = 0;
  int64_t bootMs = 0;  // CLOCK_BOOTTIME when read (starttime's clock)
  StatFields stat;
  uint64_t rssKb = 0;
  uint64_t pssKb = 0;
  uint32_t fds = 0;
};

// Empty if the process is gone or a zombie (no memory to speak of).
std::optional<ProcReading> readProc(pid_t pid);
int64_t bootMs();
long clockTicksPerSec();

}  // namespace sshsoak
