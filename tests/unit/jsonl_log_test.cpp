#include "supervisor/run/jsonl_log.h"

#include <capnp/message.h>
#include <capnp/schema.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "shared/clock.h"
#include "shared/wire_names.h"

using namespace sshsoak;

TEST(IsoTimestamp, PredecessorFormat) {
  // 2026-02-07T12:00:00.123456 UTC
  int64_t ns = 1770465600LL * 1'000'000'000 + 123'456'789;
  EXPECT_EQ(isoTimestamp(ns), "2026-02-07T12:00:00.123456+00:00");
}

TEST(IsoTimestamp, ParsesWhatItWrites) {
  int64_t ns = 1770465600LL * 1'000'000'000 + 123'456'000;
  EXPECT_EQ(parseIsoTimestamp(isoTimestamp(ns)), ns);
  EXPECT_EQ(parseIsoTimestamp("garbage"), 0);
  EXPECT_EQ(parseIsoTimestamp(""), 0);
}

// Found by fuzzing report (fuzz/regressions/report/): a year whose seconds
// times 1e9 do not fit in int64 is unreadable (0), not signed overflow.
TEST(IsoTimestamp, OutOfRangeYearReadsAsZero) {
  EXPECT_EQ(parseIsoTimestamp("1013-11-26T05:02:07.252074+00:00"), 0);
  EXPECT_EQ(parseIsoTimestamp("2300-01-01T00:00:00.000000+00:00"), 0);
  EXPECT_NE(parseIsoTimestamp("2200-01-01T00:00:00.000000+00:00"), 0);
}

// Found by fuzzing the event pipe (fuzz/regressions/frame_events/): a small
// frame can list a great many empty histograms; only the first 32 are read.
TEST(EventToJson, HistogramListIsBounded) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(1);
  auto list = e.initPtyStats().initHistograms(100000);
  list[0].setName("cycle");
  Json j = eventToJson(e.asReader(), "h:22");
  EXPECT_EQ(j["histograms_ignored"], 100000 - 32);
  EXPECT_TRUE(j["latency_us"].contains("cycle"));
  EXPECT_LE(j["latency_us"].size(), 2u);  // "cycle" and "" (the unnamed ones)
}

TEST(EventToJson, PredecessorFieldsFirstAndInOrder) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(3);
  e.setWallNs(1770465600LL * 1'000'000'000);
  e.setSuccess(true);
  e.setDetail("cpu=1.0% mem=2.0% disk=3.0%");
  auto p = e.initExecPoll();
  p.setRttMs(12);
  p.setCpuBusyPct(1.04f);
  Json j = eventToJson(e.asReader(), "myhost:22");
  std::string line = j.dump();
  EXPECT_EQ(line.rfind(R"({"ts":"2026-02-07T12:00:00.000000+00:00","session_id":3,"host":"myhost:22","event":"exec_poll","detail":"cpu=1.0% mem=2.0% disk=3.0%","elapsed_ms":null,"attempt":null,"success":true,)", 0), 0u)
      << line;
  EXPECT_EQ(j["rtt_ms"], 12);
  EXPECT_DOUBLE_EQ(j["cpu_busy_pct"].get<double>(), 1.0);
}

TEST(EventToJson, ReconnectedCarriesElapsedAndAttempt) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(1);
  e.setElapsedMs(1234);
  e.setAttempt(2);
  e.setSuccess(true);
  e.initReconnected().setKex("curve25519-sha256");
  Json j = eventToJson(e.asReader(), "h:22");
  EXPECT_EQ(j["event"], "reconnected");
  EXPECT_EQ(j["elapsed_ms"], 1234);
  EXPECT_EQ(j["attempt"], 2);
}

TEST(EventToJson, EveryUnionMemberHasAPredecessorStyleName) {
  using W = wire::Event::Which;
  EXPECT_EQ(eventName(W::CONNECTED), "connected");
  EXPECT_EQ(eventName(W::CONNECT_FAILED), "connect_failed");
  EXPECT_EQ(eventName(W::DISCONNECT_INJECTED), "disconnect_injected");
  EXPECT_EQ(eventName(W::RECONNECTED), "reconnected");
  EXPECT_EQ(eventName(W::RECONNECT_FAILED), "reconnect_failed");
  EXPECT_EQ(eventName(W::EXEC_POLL), "exec_poll");
  EXPECT_EQ(eventName(W::EXEC_POLL_ERROR), "exec_poll_error");
  EXPECT_EQ(eventName(W::PTY_CYCLE), "pty_cycle");
  EXPECT_EQ(eventName(W::PTY_ERROR), "pty_error");
  // Every member of the schema's union is named (none falls to "unknown").
  auto schema = capnp::Schema::from<wire::Event>();
  for (auto field : schema.getUnionFields()) {
    EXPECT_NE(eventName(static_cast<W>(field.getProto().getDiscriminantValue())), "unknown")
        << field.getProto().getName().cStr();
  }
}

TEST(EventToJson, FailureCarriesCategoryAndMessage) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  auto f = e.initConnectFailed();
  f.setCategory(wire::FailureCategory::AUTH);
  f.setMessage("refused");
  Json j = eventToJson(e.asReader(), "h:22");
  EXPECT_EQ(j["category"], "auth");
  EXPECT_EQ(j["message"], "refused");
  EXPECT_EQ(j["success"], false);
}

TEST(JsonlLog, AppendsOneLinePerWriteAndSurvivesBadUtf8) {
  auto path = std::filesystem::temp_directory_path() / ("sshsoak-log-" + std::to_string(::getpid()) + ".jsonl");
  std::filesystem::remove(path);
  {
    JsonlLog log(path.string());
    Json a = lineHead(0, 1, "h", "x");
    a["detail"] = std::string("bad \xff utf8");
    log.write(a);
    log.write(lineHead(0, std::nullopt, "", "summary"));
    EXPECT_EQ(log.linesWritten(), 2u);
  }
  std::ifstream in(path);
  std::string l1, l2, l3;
  ASSERT_TRUE(std::getline(in, l1));
  ASSERT_TRUE(std::getline(in, l2));
  EXPECT_FALSE(std::getline(in, l3));
  EXPECT_NO_THROW(Json::parse(l1));
  EXPECT_EQ(Json::parse(l2)["session_id"], nullptr);
  std::filesystem::remove(path);
}

TEST(JsonlLog, TheListenerSeesEveryLineOnceWrittenInOrder) {
  auto path = std::filesystem::temp_directory_path() / ("sshsoak-listen-" + std::to_string(::getpid()) + ".jsonl");
  std::filesystem::remove(path);
  std::vector<std::string> seen;
  {
    JsonlLog log(path.string());
    log.setListener([&](const Json& line) {
      // Already in the file when the listener hears of it.
      EXPECT_EQ(log.linesWritten(), seen.size() + 1);
      seen.push_back(line["event"].get<std::string>());
    });
    log.write(lineHead(0, 0, "h", "connected"));
    log.write(lineHead(0, std::nullopt, "", "summary"));
    log.setListener(nullptr);
    log.write(lineHead(0, std::nullopt, "", "unheard"));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"connected", "summary"}));
  std::filesystem::remove(path);
}

namespace {

struct RotatedDir {
  std::filesystem::path dir;
  std::filesystem::path log;
  RotatedDir() {
    char tmpl[] = "/tmp/sshsoak-rotate-XXXXXX";
    dir = ::mkdtemp(tmpl);
    log = dir / "run.jsonl";
  }
  ~RotatedDir() { std::filesystem::remove_all(dir); }
  std::vector<Json> linesOf(const std::filesystem::path& p) const {
    std::vector<Json> out;
    std::ifstream in(p);
    for (std::string l; std::getline(in, l);) out.push_back(Json::parse(l));
    return out;
  }
};

Json numbered(int i) {
  Json j = lineHead(0, 0, "h:22", "pty_stats");
  j["n"] = i;
  j["detail"] = std::string(60, 'x');
  return j;
}

}  // namespace

TEST(JsonlLog, RotationLosesNoLineAndEachFileStartsWithTheRunStartedCopy) {
  RotatedDir d;
  constexpr uint64_t CAP = 1000;
  std::vector<std::string> heard;
  {
    JsonlLog log(d.log.string(), LogRotation{.maxBytes = CAP, .keep = 100});
    log.setListener([&](const Json& l) { heard.push_back(l["event"].get<std::string>()); });
    Json started = lineHead(0, std::nullopt, "", "run_started");
    started["run_id"] = "R1";
    log.write(started);
    EXPECT_EQ(log.runOffset(), 0u);
    for (int i = 0; i < 100; ++i) log.write(numbered(i));
    EXPECT_GT(log.part(), 5u);
    EXPECT_EQ(log.runOffset(), 0u);
  }
  // Read the set oldest first: LOG.N .. LOG.1, LOG.
  std::vector<std::filesystem::path> files;
  for (uint32_t k = 100; k >= 1; --k) {
    auto p = JsonlLog::rotatedPath(d.log.string(), k);
    if (std::filesystem::exists(p)) files.emplace_back(p);
  }
  files.push_back(d.log);
  std::vector<int> numbers;
  uint32_t expectedPart = 1;
  for (const auto& f : files) {
    EXPECT_LE(std::filesystem::file_size(f), CAP) << f;
    auto lines = d.linesOf(f);
    ASSERT_FALSE(lines.empty()) << f;
    if (expectedPart == 1) {
      EXPECT_EQ(lines[0]["event"], "run_started");
    } else {
      EXPECT_EQ(lines[0]["event"], "log_continued") << f;
      EXPECT_EQ(lines[0]["part"], expectedPart);
      EXPECT_EQ(lines[0]["run_id"], "R1");
      EXPECT_EQ(lines[0]["run_started"]["event"], "run_started");
      EXPECT_EQ(lines[0]["run_started"]["run_id"], "R1");
    }
    ++expectedPart;
    for (const auto& l : lines) {
      if (l["event"] == "pty_stats") numbers.push_back(l["n"].get<int>());
    }
  }
  ASSERT_EQ(numbers.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(numbers[i], i);
  // The listener (the live run's model) hears the log_continued lines too.
  EXPECT_EQ(std::count(heard.begin(), heard.end(), "log_continued"), static_cast<long>(files.size() - 1));
}

TEST(JsonlLog, EarlierRunsRotateAwayBeforeTheRunWithoutALogContinued) {
  RotatedDir d;
  std::string old(2000, 'o');
  { std::ofstream(d.log) << R"({"event":"summary","old":")" << old << "\"}\n"; }
  {
    JsonlLog log(d.log.string(), LogRotation{.maxBytes = 1000, .keep = 3});
    log.write(lineHead(0, std::nullopt, "", "run_started"));
    EXPECT_EQ(log.part(), 1u);
    EXPECT_EQ(log.runOffset(), 0u);
  }
  auto lines = d.linesOf(d.log);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["event"], "run_started");
  EXPECT_EQ(d.linesOf(JsonlLog::rotatedPath(d.log.string(), 1)).at(0)["old"], old);
}

TEST(JsonlLog, RotationKeepsOnlyKeepFiles) {
  RotatedDir d;
  {
    JsonlLog log(d.log.string(), LogRotation{.maxBytes = 400, .keep = 2});
    Json started = lineHead(0, std::nullopt, "", "run_started");
    started["run_id"] = "R2";
    log.write(started);
    for (int i = 0; i < 60; ++i) log.write(numbered(i));
    EXPECT_GT(log.part(), 4u);
  }
  EXPECT_TRUE(std::filesystem::exists(JsonlLog::rotatedPath(d.log.string(), 1)));
  EXPECT_TRUE(std::filesystem::exists(JsonlLog::rotatedPath(d.log.string(), 2)));
  EXPECT_FALSE(std::filesystem::exists(JsonlLog::rotatedPath(d.log.string(), 3)));
  // The newest lines are in LOG.
  auto last = d.linesOf(d.log);
  ASSERT_GE(last.size(), 2u);
  EXPECT_EQ(last.back()["n"], 59);
}

TEST(JsonlLog, WithoutACapTheFileIsNeverRotated) {
  RotatedDir d;
  {
    JsonlLog log(d.log.string());
    Json started = lineHead(0, std::nullopt, "", "run_started");
    log.write(started);
    for (int i = 0; i < 200; ++i) log.write(numbered(i));
    EXPECT_EQ(log.part(), 1u);
  }
  EXPECT_FALSE(std::filesystem::exists(JsonlLog::rotatedPath(d.log.string(), 1)));
  EXPECT_EQ(d.linesOf(d.log).size(), 201u);
}

TEST(JsonlLog, ARunAppendedToAnOlderLogKnowsItsOffset) {
  RotatedDir d;
  std::string old = R"({"event":"summary"})" "\n";
  { std::ofstream(d.log) << old; }
  JsonlLog log(d.log.string());
  log.write(lineHead(0, std::nullopt, "", "run_started"));
  EXPECT_EQ(log.runOffset(), old.size());
  ASSERT_TRUE(log.runStarted().has_value());
}

// A run killed mid-write leaves a cut last line; the next run's lines start
// on a line of their own, and the report reads them.
TEST(JsonlLogCutLine, TheNextRunStartsOnALineOfItsOwn) {
  auto dir = std::filesystem::temp_directory_path() / ("sshsoak-cut-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / "run.jsonl").string();
  {
    std::ofstream out(path);
    out << "{\"ts\":\"2026-11-23T10:00:00.000000+00:00\",\"event\":\"run_started\",\"run_id\":\"a\"}\n{\"ts\":\"2026-11-2";
  }
  {
    sshsoak::JsonlLog log(path);
    log.write(sshsoak::Json{{"ts", "2026-11-23T11:00:00.000000+00:00"}, {"event", "run_started"}, {"run_id", "b"}});
  }
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], "{\"ts\":\"2026-11-2");
  EXPECT_NE(lines[2].find("\"run_id\":\"b\""), std::string::npos) << lines[2];
  std::filesystem::remove_all(dir);
}

namespace {

std::string tempLogPath(const char* name) {
  return (std::filesystem::temp_directory_path() / (std::string("sshsoak-") + name + "-" + std::to_string(::getpid()) + ".jsonl"))
      .string();
}

}  // namespace

// Issue 15: run_id on every line, right after the predecessor's eight
// fields, stamped in one place (JsonlLog::write) from the run_started line.
TEST(JsonlLogRunId, EveryLineCarriesTheRunIdAfterTheEightFields) {
  std::string path = tempLogPath("runid");
  std::filesystem::remove(path);
  {
    JsonlLog log(path);
    std::vector<Json> seen;
    log.setListener([&](const Json& l) { seen.push_back(l); });
    Json started = lineHead(0, std::nullopt, "", "run_started");
    started["run_id"] = "r-1";
    log.write(started);
    Json connected = lineHead(0, 2, "h:22", "connected");
    connected["kex"] = "curve25519-sha256";
    log.write(connected);
    EXPECT_EQ(log.runId(), "r-1");
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[1]["run_id"], "r-1");  // the listener sees the line as written
  }
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  std::getline(in, text);
  EXPECT_EQ(text,
            R"({"ts":"1970-01-01T00:00:00.000000+00:00","session_id":2,"host":"h:22","event":"connected","detail":null,)"
            R"("elapsed_ms":null,"attempt":null,"success":true,"run_id":"r-1","kex":"curve25519-sha256"})");
  std::filesystem::remove(path);
}

// The lock: one holder at a time, its pid named; --append shares it; the
// file goes with the last holder.
TEST(LogLock, ASecondExclusiveHolderIsRefusedWithTheHoldersPid) {
  std::string path = tempLogPath("lock");
  {
    LogLock first(path, LogLock::Mode::EXCLUSIVE);
    ASSERT_TRUE(first.held()) << first.error();
    LogLock second(path, LogLock::Mode::EXCLUSIVE);
    EXPECT_FALSE(second.held());
    EXPECT_TRUE(second.error().empty()) << second.error();
    EXPECT_EQ(second.holderPid(), ::getpid());
    LogLock appending(path, LogLock::Mode::SHARED);
    EXPECT_FALSE(appending.held());  // it goes on unlocked (main.cpp), refused nothing
  }
  EXPECT_FALSE(std::filesystem::exists(LogLock::lockPath(path)));
  {
    LogLock a(path, LogLock::Mode::SHARED), b(path, LogLock::Mode::SHARED);
    EXPECT_TRUE(a.held());
    EXPECT_TRUE(b.held());
    LogLock c(path, LogLock::Mode::EXCLUSIVE);
    EXPECT_FALSE(c.held());
    EXPECT_EQ(c.holderPid(), ::getpid());
  }
  EXPECT_FALSE(std::filesystem::exists(LogLock::lockPath(path)));
  // A leftover file of a dead holder (no flock on it) blocks nobody.
  std::ofstream(LogLock::lockPath(path)) << "999999\n";
  {
    LogLock next(path, LogLock::Mode::EXCLUSIVE);
    EXPECT_TRUE(next.held()) << next.error();
  }
  EXPECT_FALSE(std::filesystem::exists(LogLock::lockPath(path)));
}

// A failed write is reported once, the listener still sees every line, and
// nothing more goes to the file.
TEST(JsonlLogFailure, AFailedWriteIsReportedOnceAndTheListenerStillSeesEveryLine) {
  std::string path = tempLogPath("fail");
  std::filesystem::remove(path);
  JsonlLog log(path);
  std::vector<LogFailure> failures;
  size_t seen = 0;
  log.setFailureHandler([&](const LogFailure& f) { failures.push_back(f); });
  log.setListener([&](const Json&) { ++seen; });
  log.write(lineHead(0, 0, "", "connected"));
  ASSERT_EQ(::unlink(path.c_str()), 0);
  log.checkFile();
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].errnum, ENOENT);
  EXPECT_NE(failures[0].text().find(path + ": deleted under the run: No such file or directory"), std::string::npos)
      << failures[0].text();
  log.write(lineHead(0, 1, "", "connected"));
  log.write(lineHead(0, 2, "", "connected"));
  EXPECT_EQ(failures.size(), 1u);
  EXPECT_EQ(seen, 3u);
  EXPECT_EQ(log.linesWritten(), 1u);
}
