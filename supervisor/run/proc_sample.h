// One process's figures from /proc: CPU time (utime + stime), VmRSS, Pss
// (smaps_rollup), open fds and threads. Parsing is split from reading so
// the tests can feed it text.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace sshsoak {

struct StatFields {
  uint64_t cpuTicks = 0;    // utime + stime, in clock ticks (sysconf(_SC_CLK_TCK))
  uint64_t startTicks = 0;  // starttime: ticks after boot
  uint32_t threads = 0;
  pid_t ppid = 0;
  uint64_t childCpuTicks = 0;  // cutime + cstime: its reaped (waited-for) children's
  uint64_t rssPages = 0;       // field 24: resident pages (what statm and VmRSS say)
  char state = '?';            // 'Z': a zombie, nothing left to measure
};

// /proc/PID/stat; the command name may hold spaces and ')' (parsed from the last ')').
std::optional<StatFields> parseProcStat(std::string_view text);
// The command name between the first '(' and the last ')'; empty if malformed.
std::string_view parseProcComm(std::string_view text);
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
long pageKb();

// Allocation-free reading for the sampler: a small /proc file into a fixed
// buffer. Returns the bytes read (the text is cut at cap - 1), or -1 if the
// file cannot be opened or read (the process is gone).
long readSmallFile(const char* path, char* buf, size_t cap);
// The same through an fd kept open across passes: /proc files regenerate on
// every pread at offset 0; a dead process's file reads as an error.
long preadSmallFile(int fd, char* buf, size_t cap);

// /proc/net/tcp and /proc/net/tcp6: one row per socket.
enum TcpState : uint8_t { TCP_ESTABLISHED = 0x01, TCP_TIME_WAIT = 0x06, TCP_CLOSE_WAIT = 0x08 };
struct TcpRow {
  uint64_t inode = 0;
  uint16_t localPort = 0;
  uint16_t remotePort = 0;
  uint8_t state = 0;
};
// Appends the rows of one table's text (its header line is skipped; a
// malformed row is skipped too).
void parseTcpTable(std::string_view text, std::vector<TcpRow>& out);
// "socket:[12345]" (an fd's link) -> 12345.
std::optional<uint64_t> parseSocketInode(std::string_view link);

}  // namespace sshsoak
