// The system limits a run of N sessions needs, checked before anything is
// started: open files (the supervisor holds a few fds per agent) and
// processes. The soft RLIMIT_NOFILE is raised to the hard limit first.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sshsoak {

// The supervisor's fds for N sessions: per agent its event pipe's read end,
// its command pipe's write end, the sampler's open /proc/PID/stat, and
// during a (re)spawn the child's two pipe ends plus boost::process's exec
// error pipe (one agent at a time); plus a fixed base (log, epoll, signal
// pipe, stdin, the token bucket, the sampler's /proc directory and table
// reads, the embedded sshd's pipes).
constexpr uint64_t FDS_PER_SESSION = 3;
constexpr uint64_t FDS_BASE = 64;
uint64_t fdsNeeded(uint64_t sessions);
// Measured (issue 15): 13 + 3 per session in the supervisor at 10 and at 100
// sessions of the embedded default (43 and 313 fds), so the base leaves
// room for the sshd's pipes, the fault commands and the HTML write.

// An agent inherits the raised limit; it holds stdin/stdout/stderr, its two
// pipes and one socket per connection (6 measured for the PTY workload), a
// jobs worker up to --max-connections-per-worker sockets at once.
constexpr uint64_t AGENT_FDS_BASE = 16;
uint64_t agentFdsNeeded(uint64_t connectionsPerAgent);

// Processes: an agent per session, and with the embedded sshd about four per
// session on its side (monitor, user process, shell, the remote loop's
// command).
uint64_t processesNeeded(uint64_t sessions, bool embeddedSshd);

struct LimitCheck {
  std::optional<std::string> error;  // the run cannot fit: what, why, the fix
  std::string info;                  // what was raised, for an info line ("" if nothing)
  std::string warning;               // a limit that may bite ("" if none)
};

// Pure: the decision from the limits' values (tests feed made-up ones).
LimitCheck judgeFdLimit(uint64_t sessions, uint64_t softBefore, uint64_t softAfter, uint64_t hard,
                        uint64_t connectionsPerAgent = 1);
std::string judgeProcessLimits(uint64_t sessions, bool embeddedSshd, uint64_t pidMax, std::optional<uint64_t> nproc);

// Raises RLIMIT_NOFILE's soft limit to the hard one and judges it and the
// process limits for this run.
LimitCheck checkSystemLimits(uint64_t sessions, bool embeddedSshd, uint64_t connectionsPerAgent = 1);

}  // namespace sshsoak
