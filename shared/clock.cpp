#include "shared/clock.h"

#include <ctime>
#include <cstdio>

namespace sshsoak {

static int64_t readClock(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t monoNs() { return readClock(CLOCK_MONOTONIC); }
int64_t wallNs() { return readClock(CLOCK_REALTIME); }

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

}  // namespace sshsoak
