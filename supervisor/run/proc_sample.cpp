#include "supervisor/run/proc_sample.h"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

namespace sshsoak {

namespace {

// Small /proc files in one read; empty if the file cannot be read.
std::string slurp(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::optional<uint64_t> toU64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

uint32_t countFds(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return 0;
  uint32_t n = 0;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n;
}

}  // namespace

std::optional<StatFields> parseProcStat(std::string_view text) {
  auto close = text.rfind(')');
  if (close == std::string_view::npos || close + 2 > text.size()) return std::nullopt;
  // Fields after "(comm) ", numbered as in proc(5): 3 state ... 14 utime,
  // 15 stime, 20 num_threads, 22 starttime.
  std::string_view rest = text.substr(close + 2);
  StatFields f;
  int field = 3;
  bool utime = false, stime = false, threads = false, start = false;
  if (!rest.empty()) f.state = rest[0];
  while (!rest.empty() && field <= 24) {
    auto sp = rest.find(' ');
    std::string_view tok = rest.substr(0, sp);
    auto v = toU64(tok);
    if (v) {
      if (field == 4) f.ppid = static_cast<pid_t>(*v);
      if (field == 14) { f.cpuTicks += *v; utime = true; }
      if (field == 15) { f.cpuTicks += *v; stime = true; }
      if (field == 16 || field == 17) f.childCpuTicks += *v;
      if (field == 20) { f.threads = static_cast<uint32_t>(*v); threads = true; }
      if (field == 22) { f.startTicks = *v; start = true; }
      if (field == 24) f.rssPages = *v;
    }
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
    ++field;
  }
  if (!utime || !stime || !threads || !start) return std::nullopt;
  return f;
}

std::string_view parseProcComm(std::string_view text) {
  auto open = text.find('(');
  auto close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) return {};
  return text.substr(open + 1, close - open - 1);
}

std::optional<uint64_t> parseKbField(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ':') {
      std::string_view v = line.substr(key.size() + 1);
      v.remove_prefix(std::min(v.find_first_not_of(" \t"), v.size()));
      v = v.substr(0, v.find_first_of(" \t"));
      return toU64(v);
    }
    if (eol == std::string_view::npos) break;
    pos = eol + 1;
  }
  return std::nullopt;
}

std::optional<uint64_t> processTreeCpuTicks(pid_t root) {
  auto rootStat = parseProcStat(slurp("/proc/" + std::to_string(root) + "/stat"));
  if (!rootStat) return std::nullopt;
  // One pass over /proc: every process's parent and CPU.
  struct Entry {
    pid_t pid;
    pid_t ppid;
    uint64_t ticks;
  };
  std::vector<Entry> all;
  if (DIR* dir = ::opendir("/proc")) {
    while (dirent* e = ::readdir(dir)) {
      auto pid = toU64(e->d_name);
      if (!pid || static_cast<pid_t>(*pid) == root) continue;
      auto st = parseProcStat(slurp(std::string("/proc/") + e->d_name + "/stat"));
      if (st) all.push_back(Entry{static_cast<pid_t>(*pid), st->ppid, st->cpuTicks + st->childCpuTicks});
    }
    ::closedir(dir);
  }
  uint64_t ticks = rootStat->cpuTicks + rootStat->childCpuTicks;
  std::vector<pid_t> frontier{root};
  std::vector<bool> taken(all.size(), false);
  while (!frontier.empty()) {
    pid_t parent = frontier.back();
    frontier.pop_back();
    for (size_t i = 0; i < all.size(); ++i) {
      if (taken[i] || all[i].ppid != parent) continue;
      taken[i] = true;  // each process once, whatever /proc's snapshot says
      ticks += all[i].ticks;
      frontier.push_back(all[i].pid);
    }
  }
  return ticks;
}

int64_t bootMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

long pageKb() {
  static const long kb = ::sysconf(_SC_PAGESIZE) / 1024;
  return kb;
}

long preadSmallFile(int fd, char* buf, size_t cap) {
  if (cap == 0) return -1;
  size_t got = 0;
  // Most /proc files come in one read; a loop for the odd one that does not.
  while (got < cap - 1) {
    ssize_t n = ::pread(fd, buf + got, cap - 1 - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  buf[got] = '\0';
  return static_cast<long>(got);
}

long readSmallFile(const char* path, char* buf, size_t cap) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  long n = preadSmallFile(fd, buf, cap);
  ::close(fd);
  return n;
}

namespace {

std::optional<uint64_t> hexU64(std::string_view s) {
  if (s.empty() || s.size() > 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return std::nullopt;
    v = v * 16 + static_cast<uint64_t>(d);
  }
  return v;
}

// "0100007F:0016" or a 32-digit IPv6 address: the port after the ':'.
std::optional<uint16_t> portOf(std::string_view addr) {
  auto colon = addr.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto v = hexU64(addr.substr(colon + 1));
  if (!v || *v > 0xffff) return std::nullopt;
  return static_cast<uint16_t>(*v);
}

}  // namespace

void parseTcpTable(std::string_view text, std::vector<TcpRow>& out) {
  // "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ..."
  auto eol = text.find('\n');
  if (eol == std::string_view::npos) return;
  size_t pos = eol + 1;
  while (pos < text.size()) {
    eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    std::string_view cols[10];
    size_t n = 0, i = 0;
    while (n < 10) {
      while (i < line.size() && line[i] == ' ') ++i;
      if (i >= line.size()) break;
      size_t start = i;
      while (i < line.size() && line[i] != ' ') ++i;
      cols[n++] = line.substr(start, i - start);
    }
    if (n < 10) continue;
    auto local = portOf(cols[1]);
    auto remote = portOf(cols[2]);
    auto state = hexU64(cols[3]);
    auto inode = toU64(cols[9]);
    if (!local || !remote || !state || !inode) continue;
    out.push_back(TcpRow{*inode, *local, *remote, static_cast<uint8_t>(*state)});
  }
}

std::optional<uint64_t> parseSocketInode(std::string_view link) {
  constexpr std::string_view PREFIX = "socket:[";
  if (link.size() < PREFIX.size() + 2 || link.substr(0, PREFIX.size()) != PREFIX || link.back() != ']') {
    return std::nullopt;
  }
  return toU64(link.substr(PREFIX.size(), link.size() - PREFIX.size() - 1));
}

long clockTicksPerSec() {
  static const long ticks = ::sysconf(_SC_CLK_TCK);
  return ticks;
}

std::optional<ProcReading> readProc(pid_t pid) {
  std::string base = "/proc/" + std::to_string(pid);
  ProcReading r;
  r.pid = pid;
  r.bootMs = bootMs();
  auto stat = parseProcStat(slurp(base + "/stat"));
  if (!stat) return std::nullopt;
  r.stat = *stat;
  // A zombie has no VmRSS line and an empty smaps_rollup.
  auto rss = parseKbField(slurp(base + "/status"), "VmRSS");
  auto pss = parseKbField(slurp(base + "/smaps_rollup"), "Pss");
  if (!rss || !pss) return std::nullopt;
  r.rssKb = *rss;
  r.pssKb = *pss;
  r.fds = countFds(pid);
  return r;
}

}  // namespace sshsoak
