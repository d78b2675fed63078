// The sampler's parts that need no thread: the /proc/net/tcp parser, the
// schedule's missed-tick logic, and a detail pass over real sockets and real
// child processes (loopback TCP in this process; a child named like sshd).
#include "supervisor/run/sampler.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "supervisor/run/proc_sample.h"
#include "supervisor/run/system_limits.h"

using namespace sshsoak;

TEST(TcpTable, ParsesIpv4AndIpv6RowsAndSkipsTheHeader) {
  std::string v4 =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n"
      "   1: 0100007F:9C40 0100007F:0016 01 00000000:00000000 02:000A7B3C 00000000  1000        0 67890 2 0000000000000000 20 4 30 10 -1\n"
      "   2: 0100007F:9C41 0100007F:0016 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n"
      "   3: garbage\n";
  std::string v6 =
      "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000001000000:0016 00000000000000000000000001000000:D431 08 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 20 4 0 10 -1\n";
  std::vector<TcpRow> rows;
  parseTcpTable(v4, rows);
  parseTcpTable(v6, rows);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].inode, 12345u);
  EXPECT_EQ(rows[0].localPort, 22);
  EXPECT_EQ(rows[0].state, 0x0A);
  EXPECT_EQ(rows[1].localPort, 0x9C40);
  EXPECT_EQ(rows[1].remotePort, 22);
  EXPECT_EQ(rows[1].state, TCP_ESTABLISHED);
  EXPECT_EQ(rows[2].state, TCP_TIME_WAIT);
  EXPECT_EQ(rows[2].inode, 0u);  // a TIME_WAIT socket has no owner
  EXPECT_EQ(rows[3].state, TCP_CLOSE_WAIT);
  EXPECT_EQ(rows[3].remotePort, 0xD431);
  EXPECT_EQ(rows[3].inode, 4242u);
}

TEST(TcpTable, SocketLinks) {
  EXPECT_EQ(parseSocketInode("socket:[987654]"), 987654u);
  EXPECT_FALSE(parseSocketInode("pipe:[987654]").has_value());
  EXPECT_FALSE(parseSocketInode("socket:[]").has_value());
  EXPECT_FALSE(parseSocketInode("/dev/null").has_value());
  EXPECT_FALSE(parseSocketInode("anon_inode:[eventpoll]").has_value());
}

TEST(SampleSchedule, OnTimePassesAndDetailEveryTenth) {
  SampleSchedule s(/*startMs=*/1000, /*intervalMs=*/1000, /*detailMs=*/10000);
  int details = 0;
  for (int i = 1; i <= 30; ++i) {
    EXPECT_EQ(s.nextDueMs(), 1000 + i * 1000);
    auto t = s.begin(s.nextDueMs() + 3);  // a few ms late: not a missed tick
    EXPECT_EQ(t.missed, 0u);
    EXPECT_EQ(t.detail, i % 10 == 0) << i;
    details += t.detail;
  }
  EXPECT_EQ(details, 3);
}

TEST(SampleSchedule, AnOverrunSkipsAndCountsTicksAndStillDoesTheDetailPass) {
  SampleSchedule s(0, 1000, 10000);
  EXPECT_EQ(s.begin(1000).missed, 0u);
  // The next pass was due at 2000; the machine (or a stuck loop) let it
  // begin at 5500: the ticks due at 2000..5000 are three missed ones plus
  // this one, late; the next is due at 6000, not caught up.
  auto t = s.begin(5500);
  EXPECT_EQ(t.missed, 3u);
  EXPECT_FALSE(t.detail);
  EXPECT_EQ(s.nextDueMs(), 6000);
  // A detail pass whose time passed during an overrun happens at the next
  // pass, and the one after is on the original grid.
  auto late = s.begin(13200);
  EXPECT_EQ(late.missed, 7u);
  EXPECT_TRUE(late.detail);
  EXPECT_EQ(s.nextDueMs(), 14000);
  for (int64_t due = 14000; due < 20000; due += 1000) EXPECT_FALSE(s.begin(due).detail) << due;
  EXPECT_TRUE(s.begin(20000).detail);
}

namespace {

uint16_t portOfFd(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

const ProcFigures* find(const SamplePass& p, pid_t pid) {
  for (const auto& f : p.procs) {
    if (f.pid == pid) return &f;
  }
  return nullptr;
}

}  // namespace

TEST(ProcSampler, CountsThisProcesssSocketsByStateAndTimeWaitToTheTargetPort) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  uint16_t port = portOfFd(listener);
  addr.sin_port = htons(port);
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  int served = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(served, 0);

  SamplerConfig config;
  config.targetPorts = {port};
  ProcSampler sampler(config);
  SamplePass p;
  sampler.run(p, {}, /*detail=*/true);
  ASSERT_FALSE(p.procs.empty());
  EXPECT_EQ(p.procs[0].role, ProcRole::SUPERVISOR);
  EXPECT_EQ(p.procs[0].pid, ::getpid());
  EXPECT_EQ(p.procs[0].tcpEstablished, 2u) << "both ends are this process's";
  EXPECT_EQ(p.procs[0].tcpCloseWait, 0u);
  EXPECT_GT(p.procs[0].pssKb, 0u);
  EXPECT_GT(p.procs[0].rssKb, 0u);
  EXPECT_GE(p.procs[0].fds, 6u);
  EXPECT_EQ(p.tcp.established, 2u);

  // The client closes: the served end is in CLOSE_WAIT until it closes too.
  ::close(client);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  sampler.run(p, {}, true);
  EXPECT_EQ(p.procs[0].tcpEstablished, 0u);
  EXPECT_EQ(p.procs[0].tcpCloseWait, 1u);
  EXPECT_EQ(p.tcp.closeWait, 1u);

  // Both closed: the client's end (which closed first) waits in TIME_WAIT,
  // owned by no one, counted by its remote port (the "target").
  ::close(served);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  sampler.run(p, {}, true);
  EXPECT_EQ(p.tcp.closeWait, 0u);
  EXPECT_GE(p.tcp.timeWait, 1u);
  ::close(listener);

  // A cheap pass reads nothing costly.
  sampler.run(p, {}, false);
  EXPECT_EQ(p.procs[0].pssKb, 0u);
  EXPECT_EQ(p.procs[0].fds, 0u);
  EXPECT_GT(p.procs[0].rssKb, 0u);
}

TEST(ProcSampler, AgentsByPidAndTheServersSshdNamedDescendants) {
  // Two children of this process (the "listener"): one named like sshd's
  // per-connection process, one not.
  auto child = [](const char* name) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_NAME, name);
      ::pause();
      ::_exit(0);
    }
    return pid;
  };
  pid_t sshdChild = child("sshd-session");
  pid_t other = child("bash");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the names are set

  SamplerConfig config;
  config.serverPid = ::getpid();
  config.sessions = 2;
  ProcSampler sampler(config);
  SamplePass p;
  sampler.run(p, {other, 0}, true);
  ASSERT_NE(find(p, other), nullptr);
  EXPECT_EQ(find(p, other)->role, ProcRole::AGENT);
  EXPECT_EQ(find(p, other)->sessionId, 0);
  const ProcFigures* sshd = find(p, sshdChild);
  ASSERT_NE(sshd, nullptr);
  EXPECT_EQ(sshd->role, ProcRole::SSHD);
  EXPECT_GT(sshd->rssKb, 0u);
  EXPECT_GE(sshd->fds, 3u);
  EXPECT_TRUE(p.serverKnown);
  size_t sshds = 0;
  for (const auto& f : p.procs) sshds += f.role == ProcRole::SSHD;
  EXPECT_EQ(sshds, 1u) << "bash is not the server's";

  // The agent dies: it is left out (its kept fd reads as an error), and a
  // zombie is not measured.
  ::kill(other, SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  sampler.run(p, {other, 0}, false);
  EXPECT_EQ(find(p, other), nullptr) << "a zombie";
  ::waitpid(other, nullptr, 0);
  sampler.run(p, {other, 0}, false);
  EXPECT_EQ(find(p, other), nullptr);
  ::kill(sshdChild, SIGKILL);
  ::waitpid(sshdChild, nullptr, 0);
}

TEST(SystemLimits, RefusesARunThatCannotFitAndNamesTheFix) {
  auto fits = judgeFdLimit(1000, 1024, 1048576, 1048576);
  EXPECT_FALSE(fits.error.has_value());
  EXPECT_NE(fits.info.find("from 1024 to the hard limit 1048576"), std::string::npos) << fits.info;
  auto tooFew = judgeFdLimit(1000, 1024, 1024, 1024);
  ASSERT_TRUE(tooFew.error.has_value());
  EXPECT_NE(tooFew.error->find("1000 sessions need about " + std::to_string(fdsNeeded(1000))), std::string::npos);
  EXPECT_NE(tooFew.error->find("RLIMIT_NOFILE) is 1024"), std::string::npos) << *tooFew.error;
  EXPECT_NE(tooFew.error->find("ulimit -n"), std::string::npos);
  EXPECT_TRUE(tooFew.info.empty());
  EXPECT_FALSE(judgeFdLimit(300, 1024, 1024, 1024).error.has_value());
  EXPECT_GE(fdsNeeded(1000), 3000u);
  // An agent inherits the limit: a jobs worker caching many connections
  // needs more than the supervisor's share of a small run.
  auto agents = judgeFdLimit(10, 1024, 1024, 1024, 2000);
  ASSERT_TRUE(agents.error.has_value());
  EXPECT_NE(agents.error->find("--max-connections-per-worker"), std::string::npos) << *agents.error;
  EXPECT_NE(agents.error->find("ulimit -n " + std::to_string(agentFdsNeeded(2000))), std::string::npos);
  EXPECT_FALSE(judgeFdLimit(10, 1024, 1024, 1024, 8).error.has_value());

  EXPECT_EQ(judgeProcessLimits(1000, true, 4194304, std::nullopt), "");
  EXPECT_NE(judgeProcessLimits(1000, true, 32768 / 4, std::nullopt).find("kernel.pid_max"), std::string::npos);
  EXPECT_NE(judgeProcessLimits(1000, false, 4194304, 500).find("ulimit -u"), std::string::npos);
}
