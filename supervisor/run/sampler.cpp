#include "supervisor/run/sampler.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "shared/clock.h"

namespace sshsoak {

namespace {

// /proc/PID/stat and smaps_rollup fit easily; bigger is cut, which only the
// tail of smaps_rollup (after Pss) would suffer.
constexpr size_t FILE_BUF_BYTES = 8192;
constexpr size_t DIRENT_BUF_BYTES = 16384;
constexpr uint64_t SSHD_PSS_EVERY = 6;  // detail passes: a minute at the default 10 s

void closeFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

template <typename F>
void forEachDirEntry(int dirFd, char* buf, size_t cap, F&& f) {
  for (;;) {
    ssize_t n = ::getdents64(dirFd, buf, cap);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    for (ssize_t off = 0; off < n;) {
      auto* d = reinterpret_cast<dirent64*>(buf + off);
      off += d->d_reclen;
      if (d->d_name[0] != '.') f(d->d_name);
    }
  }
}

bool allDigits(const char* s) {
  if (*s == '\0') return false;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

}  // namespace

SampleSchedule::SampleSchedule(int64_t startMs, int64_t intervalMs, int64_t detailMs)
    : intervalMs_(std::max<int64_t>(intervalMs, 1)),
      detailMs_(std::max(detailMs, intervalMs_)),
      nextDueMs_(startMs + intervalMs_),
      nextDetailMs_(startMs + detailMs_) {}

SampleSchedule::Tick SampleSchedule::begin(int64_t nowMs) {
  Tick t;
  // Ticks whose time came and went while the previous pass (or a stuck
  // loop) ran: skipped, not caught up, and counted.
  if (nowMs >= nextDueMs_ + intervalMs_) t.missed = static_cast<uint32_t>((nowMs - nextDueMs_) / intervalMs_);
  nextDueMs_ += (int64_t{t.missed} + 1) * intervalMs_;
  if (nowMs >= nextDetailMs_) {
    t.detail = true;
    nextDetailMs_ += ((nowMs - nextDetailMs_) / detailMs_ + 1) * detailMs_;
  }
  return t;
}

const char* roleName(ProcRole role) {
  switch (role) {
    case ProcRole::SUPERVISOR: return "supervisor";
    case ProcRole::AGENT: return "agent";
    case ProcRole::SSHD: return "sshd";
  }
  return "?";
}

namespace {

// The cheap figures of one /proc/PID/stat reading, for agents and sshd alike.
void fillFromStat(ProcFigures& f, pid_t pid, const StatFields& st) {
  f.pid = pid;
  f.bootMs = bootMs();
  f.cpuTicks = st.cpuTicks;
  f.startTicks = st.startTicks;
  f.rssKb = st.rssPages * static_cast<uint64_t>(pageKb());
  f.threads = st.threads;
}

}  // namespace

ProcSampler::ProcSampler(SamplerConfig config) : config_(std::move(config)), fileBuf_(FILE_BUF_BYTES) {
  agents_.resize(config_.sessions);
}

ProcSampler::~ProcSampler() {
  closeFd(self_.fd);
  for (auto& c : agents_) closeFd(c.fd);
}

// /proc/PID/stat through the fd kept for this slot; reopened when the slot's
// pid changes (a restart). A dead process's fd reads as an error: it is
// closed and the process left out. A zombie is left out too.
bool ProcSampler::readStat(Cached& c, pid_t pid, ProcFigures& f) {
  if (c.pid != pid) {
    closeFd(c.fd);
    c.pid = pid;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    c.fd = ::open(path, O_RDONLY | O_CLOEXEC);
  }
  if (c.fd < 0) return false;
  long n = preadSmallFile(c.fd, fileBuf_.data(), fileBuf_.size());
  if (n <= 0) {
    closeFd(c.fd);
    return false;
  }
  auto st = parseProcStat(std::string_view(fileBuf_.data(), static_cast<size_t>(n)));
  if (!st || st->state == 'Z') return false;
  fillFromStat(f, pid, *st);
  return true;
}

void ProcSampler::readDetail(ProcFigures& f, bool countSockets, bool pss) {
  char path[64];
  if (pss) {
    std::snprintf(path, sizeof path, "/proc/%d/smaps_rollup", static_cast<int>(f.pid));
    long n = readSmallFile(path, fileBuf_.data(), fileBuf_.size());
    if (n > 0) {
      std::string_view text(fileBuf_.data(), static_cast<size_t>(n));
      f.pssKb = parseKbField(text, "Pss").value_or(0);
      f.anonKb = parseKbField(text, "Anonymous").value_or(0);
    }
  }
  std::snprintf(path, sizeof path, "/proc/%d/fd", static_cast<int>(f.pid));
  int dirFd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd < 0) return;
  char dirBuf[DIRENT_BUF_BYTES];
  forEachDirEntry(dirFd, dirBuf, sizeof dirBuf, [&](const char* name) {
    ++f.fds;
    if (!countSockets) return;
    char link[64];
    ssize_t len = ::readlinkat(dirFd, name, link, sizeof link);
    if (len <= 0) return;
    auto inode = parseSocketInode(std::string_view(link, static_cast<size_t>(len)));
    if (!inode) return;
    auto it = std::lower_bound(tcp_.begin(), tcp_.end(), *inode,
                               [](const TcpRow& r, uint64_t i) { return r.inode < i; });
    if (it == tcp_.end() || it->inode != *inode) return;  // a pipe-like socket: unix, netlink, ...
    if (it->state == TCP_ESTABLISHED) ++f.tcpEstablished;
    if (it->state == TCP_CLOSE_WAIT) ++f.tcpCloseWait;
  });
  ::close(dirFd);
  // The sampler's own directory fd was one of the supervisor's.
  if (f.role == ProcRole::SUPERVISOR && f.fds > 0) --f.fds;
}

// TODO(perf): the dearest part of a detail pass at few sessions. Reading
// /proc/net/tcp walks the kernel's whole established hash table however
// few sockets there are (~6 ms of system time per file on the 2-core test
// machine, tcp + tcp6 ~ 2/3 of a pass at 10 sessions). NETLINK_SOCK_DIAG
// with a state filter (what ss uses) costs about half; reading tcp6 only
// when a socket was not in tcp would save the other file.
void ProcSampler::loadTcpTables() {
  tcp_.clear();
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    tableBuf_.clear();
    // A table of thousands of sockets is read in page-sized pieces; the
    // string keeps its capacity across passes.
    for (;;) {
      size_t old = tableBuf_.size();
      tableBuf_.resize(old + 65536);
      ssize_t n = ::read(fd, tableBuf_.data() + old, 65536);
      if (n < 0 && errno == EINTR) {
        tableBuf_.resize(old);
        continue;
      }
      tableBuf_.resize(old + static_cast<size_t>(std::max<ssize_t>(n, 0)));
      if (n <= 0) break;
    }
    ::close(fd);
    parseTcpTable(tableBuf_, tcp_);
  }
  std::sort(tcp_.begin(), tcp_.end(), [](const TcpRow& a, const TcpRow& b) { return a.inode < b.inode; });
}

// The listener's descendants named like sshd (the per-connection monitor
// and its privilege-separated child; "sshd-session" on OpenSSH >= 9.8), each
// read like an agent. Found through /proc/PID/task/PID/children (one small
// read per sshd process, not a scan of every process on the machine),
// descending only through sshd processes: a session's shell and what it runs
// are the workload, not the server. A kernel without that file
// (CONFIG_PROC_CHILDREN) gets one scan of /proc by ppid instead.
void ProcSampler::scanServer(SamplePass& out) {
  size_t firstSshd = out.procs.size();
  sshdPssNext_.clear();
  frontier_.clear();
  frontier_.push_back(config_.serverPid);
  bool childrenFiles = true;
  while (!frontier_.empty() && childrenFiles) {
    pid_t parent = frontier_.back();
    frontier_.pop_back();
    char path[80];
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/children", static_cast<int>(parent), static_cast<int>(parent));
    long n = readSmallFile(path, fileBuf_.data(), fileBuf_.size());
    if (n < 0) {
      // The listener is there but its children file is not: no such file
      // on this kernel.
      std::snprintf(path, sizeof path, "/proc/%d", static_cast<int>(parent));
      if (parent == config_.serverPid && ::access(path, F_OK) == 0) childrenFiles = false;
      continue;
    }
    // Copied out: the buffer is reused for each child's stat.
    kids_.clear();
    for (const char* p = fileBuf_.data(); *p;) {
      char* end = nullptr;
      long pid = std::strtol(p, &end, 10);
      if (end == p) break;
      if (pid > 0) kids_.push_back(static_cast<pid_t>(pid));
      p = end;
    }
    for (pid_t kid : kids_) {
      if (readServerProc(kid, out)) frontier_.push_back(kid);
    }
  }
  if (!childrenFiles) scanAllForServer(out);
  std::sort(sshdPssNext_.begin(), sshdPssNext_.end());
  std::swap(sshdPss_, sshdPssNext_);
  ++detailPasses_;
  std::sort(out.procs.begin() + static_cast<std::ptrdiff_t>(firstSshd), out.procs.end(),
            [](const ProcFigures& a, const ProcFigures& b) { return a.pid < b.pid; });
}

// One process of the server's: true (and in out) if it is an sshd.
bool ProcSampler::readServerProc(pid_t pid, SamplePass& out) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  long n = readSmallFile(path, fileBuf_.data(), fileBuf_.size());
  if (n <= 0) return false;
  std::string_view text(fileBuf_.data(), static_cast<size_t>(n));
  if (parseProcComm(text).substr(0, 4) != "sshd") return false;
  auto st = parseProcStat(text);
  if (!st || st->state == 'Z') return false;
  ProcFigures f;
  f.role = ProcRole::SSHD;
  fillFromStat(f, pid, *st);
  // smaps_rollup walks every page table: half a detail pass's cost. The
  // sshd's PSS (only ever shown, never judged) is read every
  // SSHD_PSS_EVERY-th detail pass and carried between.
  auto prev = std::lower_bound(sshdPss_.begin(), sshdPss_.end(), pid,
                               [](const SshdMemory& e, pid_t p) { return e.pid < p; });
  bool known = prev != sshdPss_.end() && prev->pid == pid;
  bool fresh = !known || detailPasses_ % SSHD_PSS_EVERY == 0;
  readDetail(f, true, fresh);
  if (!fresh) {
    f.pssKb = prev->pssKb;
    f.anonKb = prev->anonKb;
  }
  sshdPssNext_.push_back(SshdMemory{pid, f.pssKb, f.anonKb});
  out.procs.push_back(f);
  return true;
}

// Without children files: one scan of /proc (pid, ppid, name).
void ProcSampler::scanAllForServer(SamplePass& out) {
  all_.clear();
  int procFd = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (procFd < 0) return;
  char dirBuf[DIRENT_BUF_BYTES];
  forEachDirEntry(procFd, dirBuf, sizeof dirBuf, [&](const char* name) {
    if (!allDigits(name)) return;
    int pid = std::atoi(name);
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
    long n = readSmallFile(path, fileBuf_.data(), fileBuf_.size());
    if (n <= 0) return;
    std::string_view text(fileBuf_.data(), static_cast<size_t>(n));
    auto st = parseProcStat(text);
    if (!st) return;
    all_.push_back(ProcEntry{static_cast<pid_t>(pid), st->ppid, parseProcComm(text).substr(0, 4) == "sshd"});
  });
  ::close(procFd);
  frontier_.clear();
  frontier_.push_back(config_.serverPid);
  while (!frontier_.empty()) {
    pid_t parent = frontier_.back();
    frontier_.pop_back();
    for (auto& e : all_) {
      if (e.ppid != parent || e.pid == 0 || !e.sshd) continue;
      pid_t pid = e.pid;
      e.pid = 0;  // each process once, whatever /proc's snapshot says
      if (readServerProc(pid, out)) frontier_.push_back(pid);
    }
  }
}

namespace {

int64_t threadCpuNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

void ProcSampler::run(SamplePass& out, const std::vector<pid_t>& agents, bool detail) {
  int64_t startNs = monoNs();
  int64_t startCpuNs = threadCpuNs();
  out.monoMs = startNs / 1'000'000;
  out.detail = detail;
  out.last = false;
  out.procs.clear();
  out.tcp = {};
  out.serverKnown = detail && config_.serverPid > 0;
  if (agents_.size() < agents.size()) agents_.resize(agents.size());
  ProcFigures self;
  self.role = ProcRole::SUPERVISOR;
  if (readStat(self_, ::getpid(), self)) out.procs.push_back(self);
  for (size_t i = 0; i < agents.size(); ++i) {
    ProcFigures f;
    f.role = ProcRole::AGENT;
    f.sessionId = static_cast<int64_t>(i);
    if (agents[i] > 0 && readStat(agents_[i], agents[i], f)) {
      out.procs.push_back(f);
    } else if (agents[i] <= 0 && agents_[i].pid != 0) {
      closeFd(agents_[i].fd);
      agents_[i].pid = 0;
    }
  }
  if (detail) {
    loadTcpTables();
    for (auto& f : out.procs) {
      readDetail(f, true, true);
      out.tcp.established += f.tcpEstablished;
      out.tcp.closeWait += f.tcpCloseWait;
    }
    for (const auto& row : tcp_) {
      if (row.state != TCP_TIME_WAIT) continue;
      for (uint16_t port : config_.targetPorts) {
        if (row.localPort == port || row.remotePort == port) {
          ++out.tcp.timeWait;
          break;
        }
      }
    }
    if (config_.serverPid > 0) scanServer(out);
  }
  out.passMs = static_cast<double>(monoNs() - startNs) / 1e6;
  out.passCpuMs = static_cast<double>(threadCpuNs() - startCpuNs) / 1e6;
}

SamplerThread::SamplerThread(SamplerConfig config, int64_t startMonoMs, std::function<void()> notify)
    : sampler_(config),
      schedule_(startMonoMs, config.intervalMs, config.detailMs),
      notify_(std::move(notify)),
      agents_(config.sessions, 0),
      agentsCopy_(config.sessions, 0) {}

SamplerThread::~SamplerThread() { stop(); }

void SamplerThread::start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
}

void SamplerThread::setAgent(uint32_t session, pid_t pid) {
  std::lock_guard lock(mu_);
  if (session >= agents_.size()) agents_.resize(session + 1, 0);
  agents_[session] = pid;
}

bool SamplerThread::take(SamplePass& out) {
  {
    std::lock_guard lock(mu_);
    if (!fresh_) return false;
    std::swap(out, pending_);
    fresh_ = false;
  }
  cv_.notify_all();
  return true;
}

void SamplerThread::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void SamplerThread::finalPass(SamplePass& out) {
  {
    std::lock_guard lock(mu_);
    agentsCopy_ = agents_;
  }
  auto tick = schedule_.begin(std::max(monoMs(), schedule_.nextDueMs()));
  missed_ += tick.missed;
  missedSinceDetail_ += tick.missed;
  sampler_.run(out, agentsCopy_, true);
  out.last = true;
  ++taken_;
  cpuMsTotal_ += out.passCpuMs;
  out.cpuMsTotal = cpuMsTotal_;
  out.missedSinceDetail = missedSinceDetail_;
  missedSinceDetail_ = 0;
  out.taken = taken_;
  out.missed = missed_;
}

void SamplerThread::loop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    auto due = std::chrono::steady_clock::now() + std::chrono::milliseconds(schedule_.nextDueMs() - monoMs());
    if (cv_.wait_until(lock, due, [this] { return stop_; })) break;
    if (monoMs() < schedule_.nextDueMs()) continue;
    // The loop has not taken the previous pass: wait for it (the ticks
    // meanwhile are missed), rather than queue passes without bound.
    cv_.wait(lock, [this] { return stop_ || !fresh_; });
    if (stop_) break;
    auto tick = schedule_.begin(monoMs());
    agentsCopy_ = agents_;  // same size every time: no allocation
    lock.unlock();
    missed_ += tick.missed;
    missedSinceDetail_ += tick.missed;
    sampler_.run(work_, agentsCopy_, tick.detail);
    ++taken_;
    cpuMsTotal_ += work_.passCpuMs;
    work_.cpuMsTotal = cpuMsTotal_;
    work_.taken = taken_;
    work_.missed = missed_;
    work_.missedSinceDetail = missedSinceDetail_;
    if (tick.detail) missedSinceDetail_ = 0;
    lock.lock();
    if (stop_) break;
    std::swap(work_, pending_);
    fresh_ = true;
    lock.unlock();
    notify_();
    lock.lock();
  }
}

}  // namespace sshsoak
