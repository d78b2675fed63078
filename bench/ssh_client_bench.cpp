// sshsoak-bench-client: the agent's own SSH code (SshConnection + ExecTask,
// from sshsoak_agent_lib) on its own, for the two cases where the client's
// cost per operation is the figure (docs/benchmarks.md):
//
//   handshake  K cycles of TCP connect + key exchange + auth + one exec round
//              trip ("true") + clean close; client CPU per cycle from
//              getrusage(RUSAGE_SELF) and connections per second.
//   throughput one exec channel reading N bytes (`head -c N /dev/zero`),
//              counted, never stored; MB/s and client CPU.
//
// Prints one JSON object on stdout. scripts/bench.sh runs it against its own
// private sshd; it is not a general tool.
#include <sys/resource.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "session_agent/ssh/exec_task.h"
#include "session_agent/ssh/connection.h"
#include "shared/clock.h"

using sshsoak::monoMs;
using sshsoak::monoNs;
using namespace sshsoak::agent;

namespace {

struct Args {
  std::string mode;
  ConnectSettings conn;
  uint64_t count = 100;          // handshake cycles
  uint64_t bytes = 1ull << 30;   // throughput bytes
  int timeoutSecs = 15;
  bool readStderr = true;  // --read-stderr 0: the libssh2 1.10 window-adjust experiment
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: sshsoak-bench-client handshake|throughput --host H --port P --user U --key FILE\n"
               "         --known-hosts FILE [--count K] [--bytes N] [--timeout-secs S]\n");
  std::exit(2);
}

Args parse(int argc, char** argv) {
  if (argc < 2) usage();
  Args a;
  a.mode = argv[1];
  a.conn.hostKeyPolicy = sshsoak::wire::HostKeyPolicy::STRICT;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--host") a.conn.host = v;
    else if (k == "--port") a.conn.port = static_cast<uint16_t>(std::stoi(v));
    else if (k == "--user") a.conn.user = v;
    else if (k == "--key") a.conn.keyPath = v;
    else if (k == "--known-hosts") a.conn.knownHostsPath = v;
    else if (k == "--count") a.count = std::stoull(v);
    else if (k == "--bytes") a.bytes = std::stoull(v);
    else if (k == "--timeout-secs") a.timeoutSecs = std::stoi(v);
    else if (k == "--read-stderr") a.readStderr = v != "0";
    else usage();
  }
  if (a.conn.host.empty() || a.conn.user.empty() || a.conn.keyPath.empty()) usage();
  return a;
}

double cpuMs() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return ms(ru.ru_utime) + ms(ru.ru_stime);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "sshsoak-bench-client: %s\n", what.c_str());
  std::exit(1);
}

std::unique_ptr<SshConnection> connectOrDie(const Args& a) {
  auto r = SshConnection::open(a.conn, monoMs() + a.timeoutSecs * 1000, -1);
  if (!r) die("connect: " + r.error().message);
  return std::move(r).value();
}

// Steps an ExecTask to the end the way the agent's loop does: step, and when
// it made no progress, wait on the directions libssh2 is blocked on.
void runExec(SshConnection& c, ExecTask& task, int64_t deadlineMs) {
  for (;;) {
    bool progressed = false;
    auto st = task.step(c.session(), progressed);
    if (st == ExecTask::Status::Done) return;
    if (st == ExecTask::Status::Failed) die("exec: " + task.error());
    if (!progressed && c.waitSocket(deadlineMs, -1) == Wait::TIMEOUT) die("exec: deadline passed");
  }
}

int handshake(const Args& a) {
  std::string kex, cipher;
  double cpu0 = cpuMs();
  int64_t t0 = monoNs();
  for (uint64_t i = 0; i < a.count; ++i) {
    auto c = connectOrDie(a);
    ExecTask task("true", 0);
    runExec(*c, task, monoMs() + a.timeoutSecs * 1000);
    if (task.exitStatus() != 0) die("exec 'true' exited " + std::to_string(task.exitStatus()));
    c->closeGracefully(monoMs() + 2000);
    kex = c->kex;
    cipher = c->cipher;
  }
  double secs = (monoNs() - t0) / 1e9;
  double cpu = cpuMs() - cpu0;
  std::printf(
      "{\"mode\":\"handshake\",\"cycles\":%" PRIu64 ",\"wall_s\":%.3f,\"client_cpu_ms\":%.1f,"
      "\"cpu_ms_per_cycle\":%.3f,\"conn_per_s\":%.2f,\"kex\":\"%s\",\"cipher\":\"%s\"}\n",
      a.count, secs, cpu, cpu / static_cast<double>(a.count), static_cast<double>(a.count) / secs,
      kex.c_str(), cipher.c_str());
  return 0;
}

// ExecTask keeps what it reads; for 1 GiB we only count, so the read loop is
// ExecTask's own (same buffer size, same stderr draining), minus the append.
int throughput(const Args& a) {
  auto c = connectOrDie(a);
  LIBSSH2_SESSION* s = c->session();
  int64_t deadline = monoMs() + 600'000;
  std::string cmd = "head -c " + std::to_string(a.bytes) + " /dev/zero";
  double cpu0 = cpuMs();
  int64_t t0 = monoNs();
  LIBSSH2_CHANNEL* ch = nullptr;
  while ((ch = libssh2_channel_open_session(s)) == nullptr) {
    if (libssh2_session_last_errno(s) != LIBSSH2_ERROR_EAGAIN) die("open channel: " + c->lastError());
    c->waitSocket(deadline, -1);
  }
  if (!c->drive([&] { return libssh2_channel_exec(ch, cmd.c_str()); }, deadline, -1).ok()) {
    die("exec: " + c->lastError());
  }
  uint64_t total = 0;
  char buf[16384];
  for (;;) {
    bool wouldBlock = false;
    for (;;) {
      ssize_t n = libssh2_channel_read(ch, buf, sizeof buf);
      if (n > 0) {
        total += static_cast<uint64_t>(n);
        continue;
      }
      if (n == LIBSSH2_ERROR_EAGAIN) wouldBlock = true;
      else if (n < 0) die("read: " + c->lastError());
      break;
    }
    for (; a.readStderr;) {
      ssize_t n = libssh2_channel_read_stderr(ch, buf, sizeof buf);
      if (n > 0) continue;
      if (n == LIBSSH2_ERROR_EAGAIN) wouldBlock = true;
      else if (n < 0) die("read stderr: " + c->lastError());
      break;
    }
    if (libssh2_channel_eof(ch)) break;
    // libssh2 1.10: a read on one stream drains the socket into every
    // stream's buffer, so stdout data may be waiting in libssh2 while the
    // socket is quiet (and the server waits for the window that data holds).
    // Waiting on the socket then stalls for good; ask libssh2 first.
    if (libssh2_poll_channel_read(ch, 0) || libssh2_poll_channel_read(ch, 1)) continue;
    if (wouldBlock && c->waitSocket(deadline, -1) == Wait::TIMEOUT) die("deadline passed");
  }
  double secs = (monoNs() - t0) / 1e9;
  double cpu = cpuMs() - cpu0;
  c->drive([&] { return libssh2_channel_close(ch); }, deadline, -1);
  c->drive([&] { return libssh2_channel_free(ch); }, deadline, -1);
  c->closeGracefully(monoMs() + 2000);
  if (total != a.bytes) die("read " + std::to_string(total) + " bytes, expected " + std::to_string(a.bytes));
  std::printf(
      "{\"mode\":\"throughput\",\"bytes\":%" PRIu64 ",\"wall_s\":%.3f,\"mb_per_s\":%.1f,"
      "\"client_cpu_ms\":%.1f,\"kex\":\"%s\",\"cipher\":\"%s\",\"mac\":\"%s\"}\n",
      total, secs, static_cast<double>(total) / 1e6 / secs, cpu, c->kex.c_str(), c->cipher.c_str(),
      c->mac.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a = parse(argc, argv);
  initLibssh2();
  if (a.mode == "handshake") return handshake(a);
  if (a.mode == "throughput") return throughput(a);
  usage();
}
