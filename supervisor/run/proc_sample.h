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
  pid_t ppid = 0;
  uint64_t childCpuTicks = 0;  // cutime + cstime: its reaped (waited-for) children's
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
// CPU of a process tree, in clock ticks: the process's own and its reaped
// children's (utime + stime + cutime + cstime), plus the same of each live
// descendant (found by ppid across /proc). A descendant reaped between two
// readings moves from the live sum into its parent's cutime/cstime, so the
// difference of two readings is the tree's CPU between them. Empty if the
// process is gone.
std::optional<uint64_t> processTreeCpuTicks(pid_t root);
int64_t bootMs();
long clockTicksPerSec();

}  // namespace sshsoak
