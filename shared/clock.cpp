#include "shared/clock.h"

#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace sshsoak {

static int64_t readClock(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t monoNs() { return readClock(CLOCK_MONOTONIC); }
int64_t wallNs() { return readClock(CLOCK_REALTIME); }
int64_t processCpuNs() { return readClock(CLOCK_PROCESS_CPUTIME_ID); }

std::string isoTimestamp(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  long micros = static_cast<long>((ns % 1'000'000'000) / 1000);
  tm utc{};
  ::gmtime_r(&secs, &utc);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, micros);
  return buf;
}

int64_t parseIsoTimestamp(const std::string& text) {
  // 2026-02-07T12:00:00.123456+00:00 (always UTC, as isoTimestamp writes)
  if (text.size() < 26 || text[19] != '.') return 0;
  tm utc{};
  if (::strptime(text.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &utc) == nullptr) return 0;
  long micros = std::strtol(text.substr(20, 6).c_str(), nullptr, 10);
  // A year a log's editor (or a fuzzer) made up must not overflow: 0, like
  // any other timestamp that cannot be read (fuzz/regressions/report/).
  int64_t ns = 0;
  if (__builtin_mul_overflow(static_cast<int64_t>(::timegm(&utc)), int64_t{1'000'000'000}, &ns) ||
      __builtin_add_overflow(ns, int64_t{micros} * 1000, &ns)) {
    return 0;
  }
  return ns;
}

uint64_t usSince(int64_t startNs) {
  int64_t ns = monoNs() - startNs;
  return ns <= 0 ? 1 : static_cast<uint64_t>((ns + 999) / 1000);
}

}  // namespace sshsoak
