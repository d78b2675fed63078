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
  while (!rest.empty() && field <= 22) {
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
    }
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
    ++field;
  }
  if (!utime || !stime || !threads || !start) return std::nullopt;
  return f;
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
