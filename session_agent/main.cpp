// sshsoak-agent: started by sshsoak only. Its argv carries nothing but a
// name for ps/top ("sshsoak-agent 03 host:22"); its configuration, secrets
// included, arrives as the first message on fd 4.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "session_agent/agent.h"
#include "session_agent/describe.h"
#include "shared/agent_fds.h"
#include "shared/fd.h"
#include "shared/frame.h"

namespace {

constexpr int EXIT_USAGE = 100;
constexpr int EXIT_SYSTEM = 111;

bool isOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

}  // namespace

int main(int argc, char** argv) {
  using namespace sshsoak;
  // For bench/driver: the remote commands, read from the code that runs them.
  if (argc >= 2 && std::strcmp(argv[1], "--describe-workloads") == 0) {
    auto json = agent::describeWorkloads(argc - 2, argv + 2);
    if (!json) {
      std::fprintf(stderr, "sshsoak-agent: %s\n", json.error().c_str());
      return EXIT_USAGE;
    }
    std::printf("%s\n", json->c_str());
    return std::fflush(stdout) == 0 ? 0 : EXIT_SYSTEM;
  }
  if (!isOpen(AGENT_EVENT_FD) || !isOpen(AGENT_COMMAND_FD)) {
    std::fprintf(stderr,
                 "sshsoak-agent: this program is started by sshsoak, which passes it an event "
                 "pipe on fd 3 and a command pipe on fd 4; run sshsoak instead\n");
    return EXIT_USAGE;
  }
  // top, pidstat and /proc/PID/comm show the 15-character comm, not argv:
  // "soak-agent-03" says which slot this is at a glance.
  if (argc >= 2) {
    char name[16];
    std::snprintf(name, sizeof name, "soak-agent-%s", argv[1]);
    ::prctl(PR_SET_NAME, name);
  }
  // A dead peer must show as an error from send(), not kill the agent.
  ::signal(SIGPIPE, SIG_IGN);
  try {
    FrameReader reader;
    std::optional<kj::Array<capnp::word>> words;
    char buf[4096];
    while (!(words = reader.next())) {
      ssize_t n = ::read(AGENT_COMMAND_FD, buf, sizeof buf);
      if (n == 0) return EXIT_USAGE;  // the supervisor went away before configuring us
      if (n < 0) {
        if (errno == EINTR) continue;
        throwErrno("read config");
      }
      reader.feed(buf, static_cast<size_t>(n));
    }
    capnp::FlatArrayMessageReader message(*words);
    auto config = message.getRoot<wire::AgentConfig>();
    // The supervisor set PR_SET_PDEATHSIG before exec; if it died even
    // earlier, our parent is no longer the one that configured us.
    if (config.getSupervisorPid() != 0 && ::getppid() != config.getSupervisorPid()) return EXIT_SYSTEM;
    if (config.getCrashForTesting()) std::abort();
    // The reader may hold commands sent right behind the configuration.
    agent::watchForStops();
    agent::Agent agent(agent::AgentSettings::fromWire(config), AGENT_EVENT_FD, AGENT_COMMAND_FD, std::move(reader));
    return agent.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sshsoak-agent: internal error: %s\n", e.what());
    return EXIT_SYSTEM;
  }
}
