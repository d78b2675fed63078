#include "supervisor/run/system_limits.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>

namespace sshsoak {

namespace {

std::string limitText(uint64_t v) { return v == RLIM_INFINITY ? "unlimited" : std::to_string(v); }

}  // namespace

uint64_t fdsNeeded(uint64_t sessions) { return FDS_BASE + FDS_PER_SESSION * sessions; }
uint64_t agentFdsNeeded(uint64_t connectionsPerAgent) { return AGENT_FDS_BASE + connectionsPerAgent; }

uint64_t processesNeeded(uint64_t sessions, bool embeddedSshd) {
  return 1 + sessions + (embeddedSshd ? 4 * sessions + 1 : 0);
}

LimitCheck judgeFdLimit(uint64_t sessions, uint64_t softBefore, uint64_t softAfter, uint64_t hard,
                        uint64_t connectionsPerAgent) {
  LimitCheck c;
  if (softAfter > softBefore) {
    c.info = "raised the open-files limit (RLIMIT_NOFILE) from " + limitText(softBefore) + " to the hard limit " +
             limitText(softAfter);
  }
  uint64_t need = fdsNeeded(sessions);
  if (softAfter != RLIM_INFINITY && softAfter < need) {
    c.error = std::to_string(sessions) + " sessions need about " + std::to_string(need) +
              " open files in the supervisor (" + std::to_string(FDS_PER_SESSION) + " per session + " +
              std::to_string(FDS_BASE) + "), but the open-files limit (RLIMIT_NOFILE) is " + limitText(softAfter) +
              " (hard limit " + limitText(hard) + "). Raise it, e.g. `ulimit -n " + std::to_string(need) +
              "` (as root, or in /etc/security/limits.conf), or run fewer --sessions";
  }
  uint64_t agentNeed = agentFdsNeeded(connectionsPerAgent);
  if (!c.error && softAfter != RLIM_INFINITY && softAfter < agentNeed) {
    c.error = "each agent holds up to " + std::to_string(connectionsPerAgent) +
              " connections (--max-connections-per-worker) and needs about " + std::to_string(agentNeed) +
              " open files, but the open-files limit (RLIMIT_NOFILE) is " + limitText(softAfter) + " (hard limit " +
              limitText(hard) + "). Raise it, e.g. `ulimit -n " + std::to_string(agentNeed) +
              "`, or lower --max-connections-per-worker";
  }
  return c;
}

std::string judgeProcessLimits(uint64_t sessions, bool embeddedSshd, uint64_t pidMax, std::optional<uint64_t> nproc) {
  uint64_t need = processesNeeded(sessions, embeddedSshd);
  // pid_max bounds every process on the machine: ask for room to spare.
  if (pidMax > 0 && pidMax < 2 * need) {
    return "kernel.pid_max is " + std::to_string(pidMax) + " and this run needs about " + std::to_string(need) +
           " processes; raise it (sysctl -w kernel.pid_max=" + std::to_string(4 * need) + ") if agents fail to start";
  }
  if (nproc && *nproc != RLIM_INFINITY && *nproc < need) {
    return "the process limit (RLIMIT_NPROC, ulimit -u) is " + std::to_string(*nproc) + " and this run needs about " +
           std::to_string(need) + " processes; raise it (ulimit -u) if agents fail to start";
  }
  return "";
}

LimitCheck checkSystemLimits(uint64_t sessions, bool embeddedSshd, uint64_t connectionsPerAgent) {
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  uint64_t before = nofile.rlim_cur;
  if (nofile.rlim_cur < nofile.rlim_max) {
    rlimit raised = nofile;
    raised.rlim_cur = nofile.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) nofile = raised;
  }
  LimitCheck c = judgeFdLimit(sessions, before, nofile.rlim_cur, nofile.rlim_max, connectionsPerAgent);
  uint64_t pidMax = 0;
  std::ifstream("/proc/sys/kernel/pid_max") >> pidMax;
  std::optional<uint64_t> nproc;
  rlimit np{};
  // root is not held to RLIMIT_NPROC.
  if (::geteuid() != 0 && ::getrlimit(RLIMIT_NPROC, &np) == 0) nproc = np.rlim_cur;
  c.warning = judgeProcessLimits(sessions, embeddedSshd, pidMax, nproc);
  return c;
}

}  // namespace sshsoak
