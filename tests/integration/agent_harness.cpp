#include "agent_harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <capnp/serialize.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "shared/agent_fds.h"
#include "shared/clock.h"
#include "supervisor/run/agent_config.h"
#include "sshd_fixture.h"

namespace sshsoak::testing {

AgentHarness::AgentHarness(const LocalSshd& sshd, const JobsWorkerConfig& config) : sshd_(sshd) {
  Pipe events = makePipe();
  Pipe commands = makePipe();
  char tmpl[] = "/tmp/sshsoak-agent-harness-XXXXXX";
  int errFd = ::mkstemp(tmpl);
  if (errFd < 0) throw std::runtime_error("mkstemp failed");
  stderrPath_ = tmpl;
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // The child: async-signal-safe calls only, as in ChildSetup.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int ev = ::fcntl(events.writeEnd.get(), F_DUPFD_CLOEXEC, 64);
    int cmd = ::fcntl(commands.readEnd.get(), F_DUPFD_CLOEXEC, 64);
    int devNull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    ::dup2(devNull, 0);
    ::dup2(devNull, 1);
    ::dup2(errFd, 2);
    ::dup2(ev, AGENT_EVENT_FD);
    ::dup2(cmd, AGENT_COMMAND_FD);
    ::close_range(AGENT_COMMAND_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC);
    const char* argv[] = {SSHSOAK_AGENT_BIN, "00", "harness", nullptr};
    ::execv(SSHSOAK_AGENT_BIN, const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(errFd);
  events_ = std::move(events.readEnd);
  commands_ = std::move(commands.writeEnd);
  setNonBlocking(events_.get());

  // The run's own AgentConfig (as the supervisor fills it for --workload
  // jobs against this sshd), then the test's knobs, which are in ms.
  cli::Options options;
  options.workload = cli::WorkloadKind::JOBS;
  options.slots = {cli::Target{sshd.address(), sshd.port()}};
  options.user = sshd.user();
  options.keyPath = sshd.clientKeyPath();
  options.knownHostsPath = sshd.knownHostsPath();
  options.hostKeyPolicy = wire::HostKeyPolicy::ACCEPT_NEW;
  options.failureStrategy = config.failureStrategy;
  options.failureThreshold = config.failureThreshold;
  options.maxConnectionsPerWorker = config.maxConnections;
  options.livenessCheck = config.livenessCheck;
  capnp::MallocMessageBuilder message;
  auto c = message.initRoot<wire::AgentConfig>();
  fillAgentConfig(c, options, 0, "", 0);
  c.setReconnectTimeoutMs(config.connectTimeoutMs);
  auto jobs = c.getWorkloads()[0].getJobs();
  jobs.setMaxIdleMs(config.maxIdleMs);
  jobs.setCommandTimeoutMs(config.commandTimeoutMs);
  jobs.setConnectTimeoutMs(config.connectTimeoutMs);
  send(message);
}

AgentHarness::~AgentHarness() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  ::unlink(stderrPath_.c_str());
}

void AgentHarness::send(capnp::MessageBuilder& message) {
  if (!writeFrame(commands_.get(), message)) throw std::runtime_error("the agent's command pipe is closed");
}

void AgentHarness::runJob(const JobArgs& job) {
  capnp::MallocMessageBuilder message;
  auto j = message.initRoot<wire::Command>().initRunJob();
  j.setId(job.id);
  j.setHost(job.host);
  j.setPort(sshd_.port());
  j.setUser(sshd_.user());
  auto list = j.initCommands(static_cast<unsigned>(job.commands.size()));
  for (size_t i = 0; i < job.commands.size(); ++i) list.set(static_cast<unsigned>(i), job.commands[i]);
  j.setCommandTimeoutMs(job.commandTimeoutMs);
  j.setReuse(job.reuse);
  j.setAttempt(1);
  send(message);
}

void AgentHarness::drop() {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Command>().setDropConnection();
  send(message);
}

void AgentHarness::shutdown() {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::Command>().setShutdown();
  send(message);
}

bool AgentHarness::readSome(int waitMs) {
  if (eof_) return false;
  pollfd pfd{events_.get(), POLLIN, 0};
  if (::poll(&pfd, 1, waitMs) <= 0) return true;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(events_.get(), buf, sizeof buf);
    if (n > 0) {
      reader_.feed(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) eof_ = true;
    break;
  }
  while (auto words = reader_.next()) {
    capnp::FlatArrayMessageReader message(*words);
    lines_.push_back(eventToJson(message.getRoot<wire::Event>(), "harness"));
  }
  return !eof_;
}

bool AgentHarness::waitFor(const std::function<bool(const Json&)>& pred, int timeoutMs) {
  size_t checked = 0;
  const int64_t deadline = monoMs() + timeoutMs;
  for (;;) {
    for (; checked < lines_.size(); ++checked) {
      if (pred(lines_[checked])) return true;
    }
    int64_t left = deadline - monoMs();
    if (left <= 0 || eof_) return false;
    readSome(static_cast<int>(std::min<int64_t>(left, 100)));
  }
}

Json AgentHarness::runAndWait(const JobArgs& job, int timeoutMs) {
  runJob(job);
  Json result;
  waitFor(
      [&](const Json& l) {
        if (l["event"] == "job" && l["job_id"] == job.id) {
          result = l;
          return true;
        }
        return false;
      },
      timeoutMs);
  return result;
}

int AgentHarness::waitExit(int timeoutMs) {
  const int64_t deadline = monoMs() + timeoutMs;
  for (;;) {
    // Drain the events meanwhile, so that a full pipe cannot block it.
    readSome(20);
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      while (readSome(0)) {
      }
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (monoMs() >= deadline) return -1;
  }
}

std::vector<Json> AgentHarness::linesOf(const std::string& event) const {
  return testing::linesOf(lines_, event);
}

std::string AgentHarness::stderrText() const {
  std::ifstream in(stderrPath_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<pid_t> sshdConnectionProcesses(const LocalSshd& sshd) { return childrenOf(sshd.pid()); }

}  // namespace sshsoak::testing
