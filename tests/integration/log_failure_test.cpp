// Issue 15, the log's own failures, against real runs: a real full tmpfs, a
// log deleted or replaced under the run, a file system remounted read-only
// (standing in for a permission lost: the test runs as root), the lock on a
// log file, two runs appending to one file, `report` on a damaged log, and
// no event name as another field's value. Mounts are made in a private
// mount namespace of this test process (the sshsoak it starts inherits it),
// so nothing outside the test ever sees them.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "sshd_fixture.h"
#include "supervisor/analysis/jsonl_reader.h"
#include "supervisor/analysis/report.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

// A private mount namespace for this test process, once.
bool privateMounts() {
  static const bool done = [] {
    if (::unshare(CLONE_NEWNS) != 0) return false;
    return ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
  }();
  return done;
}

// A tmpfs mounted at dir for the test's life.
class Tmpfs {
 public:
  Tmpfs(const std::string& dir, const std::string& options) : dir_(dir) {
    std::filesystem::create_directories(dir);
    mounted_ = privateMounts() && ::mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~Tmpfs() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  bool remountReadOnly() {
    return ::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_RDONLY, nullptr) == 0;
  }
  // Fills it with a file so that about `leave` bytes stay free.
  void fillLeaving(uint64_t leave) {
    struct statvfs vfs{};
    ASSERT_EQ(::statvfs(dir_.c_str(), &vfs), 0);
    uint64_t freeBytes = uint64_t{vfs.f_bavail} * vfs.f_frsize;
    ASSERT_GT(freeBytes, leave);
    std::ofstream(dir_ + "/filler") << std::string(freeBytes - leave, 'x');
  }

 private:
  std::string dir_;
  bool mounted_ = false;
};

std::string fileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every line of the file is a whole JSON event and the file ends with a
// newline: nothing torn for the next run to glue onto. Returns the lines.
std::vector<Json> expectWholeLines(const std::string& path) {
  std::string text = fileText(path);
  std::vector<Json> lines;
  if (text.empty()) return lines;
  EXPECT_EQ(text.back(), '\n') << "the log ends in a torn line: ..." << text.substr(text.size() - std::min<size_t>(200, text.size()));
  std::istringstream in(text);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    Json j = Json::parse(line, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << path << " line " << n << " is not JSON: " << line.substr(0, 200);
    if (!j.is_discarded()) lines.push_back(std::move(j));
  }
  return lines;
}

size_t countEvent(const std::vector<Json>& lines, const std::string& event) { return linesOf(lines, event).size(); }

// What every log failure must show: exit 4, the path and the errno text on
// the console, the summary and verdict on the console, the lines written
// before it intact.
void expectLogFailure(const SoakResult& r, const std::string& path, const std::string& errnoText) {
  EXPECT_EQ(r.exitCode, exit_code::LOG_FAILED) << r.err;
  EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(errnoText), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("== verdict =="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("result "), std::string::npos) << r.out;
}

SoakResult finish(SoakProcess& soak, int timeoutSecs) {
  SoakResult r;
  r.exitCode = soak.wait(timeoutSecs);
  r.out = soak.out();
  r.err = soak.err();
  return r;
}

}  // namespace

TEST_F(SshdTest, AFullDiskStopsTheRunWithExit4AndLeavesNoTornLine) {
  Tmpfs fs(workDir_ + "/small", "size=1m");
  ASSERT_TRUE(fs.mounted()) << "mount tmpfs: " << std::strerror(errno) << " (needs root)";
  fs.fillLeaving(12 * 1024);
  std::string log = workDir_ + "/small/run.jsonl";
  auto started = std::chrono::steady_clock::now();
  // --log-detail full: a line per PTY cycle, so the disk fills in seconds.
  auto r = runSoak(soakArgs({"--sessions", "3", "--duration-secs", "60", "--log-path", log, "--log-detail", "full",
                             "--poll-interval-secs", "1"}),
                   90);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  expectLogFailure(r, log, "No space left on device");
  EXPECT_NE(r.err.find("--on-log-error stop"), std::string::npos) << r.err;
  EXPECT_LT(secs, 30) << "the run went on after the disk filled";
  auto lines = expectWholeLines(log);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front()["event"], "run_started");
  EXPECT_EQ(countEvent(lines, "summary"), 0u);  // it could not be written: it is on the console
}

TEST_F(SshdTest, AFullDiskWithOnLogErrorConsoleRunsToTheEndAndExits4) {
  Tmpfs fs(workDir_ + "/small", "size=1m");
  ASSERT_TRUE(fs.mounted()) << "mount tmpfs: " << std::strerror(errno);
  fs.fillLeaving(8 * 1024);
  std::string log = workDir_ + "/small/run.jsonl";
  auto started = std::chrono::steady_clock::now();
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "8", "--log-path", log, "--on-log-error", "console",
                             "--log-detail", "full", "--poll-interval-secs", "1"}),
                   60);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  expectLogFailure(r, log, "No space left on device");
  EXPECT_NE(r.err.find("--on-log-error console"), std::string::npos) << r.err;
  EXPECT_GE(secs, 8) << "the run stopped early";
  // The live model went on counting what the file no longer got: both
  // sessions connected and polled, as the console's summary says.
  EXPECT_NE(r.out.find("sessions              2 (2 up at end"), std::string::npos) << r.out;
  expectWholeLines(log);
}

TEST_F(SshdTest, ALogDeletedUnderTheRunIsNamedAndEndsItWithExit4) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "60"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return countEvent(l, "connected") == 2; }, 30)) << soak.err();
  std::string kept = workDir_ + "/kept.jsonl";
  ASSERT_EQ(::link(logPath_.c_str(), kept.c_str()), 0);  // what was written, for the checks below
  ASSERT_EQ(::unlink(logPath_.c_str()), 0);
  auto r = finish(soak, 30);
  expectLogFailure(r, logPath_, "deleted under the run");
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
  auto lines = expectWholeLines(kept);
  EXPECT_EQ(countEvent(lines, "connected"), 2u);
}

TEST_F(SshdTest, ALogReplacedUnderTheRunIsNamedAndEndsItWithExit4) {
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "60"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return countEvent(l, "connected") == 2; }, 30)) << soak.err();
  std::string kept = workDir_ + "/kept.jsonl", other = workDir_ + "/other.jsonl";
  ASSERT_EQ(::link(logPath_.c_str(), kept.c_str()), 0);
  std::ofstream(other) << "{\"note\": \"someone else's file\"}\n";
  ASSERT_EQ(::rename(other.c_str(), logPath_.c_str()), 0);
  auto r = finish(soak, 30);
  expectLogFailure(r, logPath_, "replaced by another file");
  // The file put there is not written to.
  EXPECT_EQ(fileText(logPath_), "{\"note\": \"someone else's file\"}\n");
  expectWholeLines(kept);
}

// Root ignores file permissions, and a read-only remount is refused (EBUSY)
// while the log is open for writing: a file-size limit (ulimit -f) stands in
// for a permission lost under the run, a write refused with an errno.
TEST_F(SshdTest, ALogPastTheFileSizeLimitIsNamedAndEndsItWithExit4) {
  struct rlimit old{}, small{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  small = old;
  small.rlim_cur = 16 * 1024;  // the run inherits it; this process writes no file that large meanwhile
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "60", "--log-detail", "full",
                             "--poll-interval-secs", "1"}));
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  auto r = finish(soak, 60);
  expectLogFailure(r, logPath_, "File too large");
  auto lines = expectWholeLines(logPath_);
  EXPECT_EQ(countEvent(lines, "connected"), 2u);
  EXPECT_LE(fileText(logPath_).size(), 16u * 1024);
}

// A failed --html at the end is no success either: exit 3, the path named.
TEST_F(SshdTest, AnHtmlReportThatCannotBeWrittenAtTheEndGivesExit3) {
  Tmpfs fs(workDir_ + "/html", "size=1m");
  ASSERT_TRUE(fs.mounted()) << "mount tmpfs: " << std::strerror(errno);
  std::string html = workDir_ + "/html/report.html";
  SoakProcess soak(soakArgs({"--sessions", "2", "--duration-secs", "4", "--html", html}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return countEvent(l, "connected") == 2; }, 30)) << soak.err();
  ASSERT_TRUE(fs.remountReadOnly()) << std::strerror(errno);
  auto r = finish(soak, 30);
  EXPECT_EQ(r.exitCode, exit_code::BAD_INPUT) << r.err;
  EXPECT_NE(r.err.find(html), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("== verdict =="), std::string::npos) << r.out;
  expectWholeLines(logPath_);
}

TEST_F(SshdTest, ASecondRunOnTheSameLogIsRefusedNamingTheFirstAndAKilledRunBlocksNobody) {
  SoakProcess first(soakArgs({"--sessions", "1", "--duration-secs", "60"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return countEvent(l, "connected") == 1; }, 30)) << first.err();
  auto second = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "2"}), 30);
  EXPECT_EQ(second.exitCode, exit_code::BAD_INPUT) << second.err;
  EXPECT_NE(second.err.find("pid " + std::to_string(first.pid())), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("--append"), std::string::npos) << second.err;
  // The refused run wrote nothing to the first run's log.
  auto lines = sshsoak::testing::readJsonl(logPath_);
  EXPECT_EQ(countEvent(lines, "run_started"), 1u);

  // A run killed outright leaves its lock file behind; the kernel dropped
  // its lock, so the next run takes the file.
  ASSERT_EQ(::kill(first.pid(), SIGKILL), 0);
  first.wait(10);
  for (const Json& started : linesOf(lines, "agent_started")) {
    // The agents notice their parent's death themselves; do not wait for it here.
    ::kill(static_cast<pid_t>(started["pid"].get<int>()), SIGKILL);
  }
  EXPECT_TRUE(std::filesystem::exists(logPath_ + ".lock"));
  auto third = runSoak(soakArgs({"--sessions", "1", "--duration-secs", "2"}), 30);
  EXPECT_EQ(third.exitCode, exit_code::PASSED) << third.err;
  EXPECT_FALSE(std::filesystem::exists(logPath_ + ".lock")) << "a clean end removes its lock file";
}

TEST_F(SshdTest, TwoRunsAppendingToOneLogAtOnceAreReportedApartByRunId) {
  SoakProcess a(soakArgs({"--sessions", "2", "--duration-secs", "6", "--run-id", "run-a"}));
  ASSERT_TRUE(waitForLog([](const auto& l) { return countEvent(l, "connected") == 2; }, 30)) << a.err();
  SoakProcess b(soakArgs({"--sessions", "3", "--duration-secs", "4", "--run-id", "run-b", "--append"}));
  EXPECT_EQ(b.wait(60), exit_code::PASSED) << b.err();
  EXPECT_EQ(a.wait(60), exit_code::PASSED) << a.err();

  auto lines = expectWholeLines(logPath_);
  // Every line carries its run's id, right after the eight fields, and the
  // two runs' lines interleave (b started and ended inside a).
  size_t aAfterB = 0;
  bool bStarted = false;
  std::map<std::string, size_t> connected;
  for (const auto& l : lines) {
    ASSERT_TRUE(l.contains("run_id")) << l.dump();
    auto it = l.begin();
    std::advance(it, 8);
    EXPECT_EQ(it.key(), "run_id") << l.dump();
    std::string id = l["run_id"];
    if (id == "run-b" && l["event"] == "run_started") bStarted = true;
    if (id == "run-a" && bStarted) ++aAfterB;
    if (l["event"] == "connected") ++connected[id];
  }
  EXPECT_GT(aAfterB, 0u) << "the runs did not interleave";
  EXPECT_EQ(connected["run-a"], 2u);
  EXPECT_EQ(connected["run-b"], 3u);

  auto input = report::read({logPath_});
  ASSERT_EQ(input.runs.size(), 2u);
  EXPECT_EQ(input.runs[0].runId, "run-a");
  EXPECT_EQ(input.runs[0].sessions, 2u);
  EXPECT_TRUE(input.runs[0].complete);
  EXPECT_EQ(input.runs[1].runId, "run-b");
  EXPECT_EQ(input.runs[1].sessions, 3u);
  EXPECT_TRUE(input.runs[1].complete);
  for (const auto& run : input.runs) {
    EXPECT_EQ(run.abnormalEnds.value_or(99), 0u) << run.runId;
    EXPECT_EQ(run.acc->model().summaryLine().value_or(Json())["run_id"], run.runId);
  }

  // And the command itself: two rows, each with its own session count.
  SoakProcess cmd({"report", logPath_});
  ASSERT_EQ(cmd.wait(30), 0) << cmd.err();
  EXPECT_NE(cmd.out().find("| run-a | "), std::string::npos) << cmd.out();
  EXPECT_NE(cmd.out().find("| run-b | "), std::string::npos) << cmd.out();
  EXPECT_EQ(cmd.err().find("skipped"), std::string::npos) << cmd.err();
}

// Must-have 7: `grep -c '"E"'` counts E events, for every event name E.
TEST_F(SshdTest, NoEventNameIsTheValueOfAnotherField) {
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "7", "--drop", "3", "--checkpoint-secs", "2"}), 60);
  ASSERT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  std::ifstream in(logPath_);
  std::vector<std::string> raw;
  for (std::string line; std::getline(in, line);) raw.push_back(line);
  auto lines = expectWholeLines(logPath_);
  ASSERT_EQ(raw.size(), lines.size());
  EXPECT_GE(countEvent(lines, "checkpoint"), 1u);
  EXPECT_GE(countEvent(lines, "reconnected"), 1u);
  for (const auto& name : knownEvents()) {
    std::string quoted = "\"" + name + "\"";
    size_t grep = 0;
    for (const auto& line : raw) grep += line.find(quoted) != std::string::npos ? 1 : 0;
    EXPECT_EQ(grep, countEvent(lines, name)) << "grep -c '" << quoted << "' does not count " << name << " events";
  }
}

// `report` on a damaged log: each bad line named (file, line, field) and
// skipped, numbers as the log has them, never exit 70.
TEST_F(SshdTest, ReportNamesAndSkipsBadLinesAndNeverExits70) {
  auto r = runSoak(soakArgs({"--sessions", "2", "--duration-secs", "3", "--run-id", "good"}), 60);
  ASSERT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  std::string text = fileText(logPath_);
  std::string bad = workDir_ + "/bad.jsonl";
  {
    std::ofstream out(bad);
    out << text;  // lines 1..n
    out << R"({"ts":"2026-01-01T00:00:00.000000+00:00","session_id":-5,"host":null,"event":"connected","detail":null,"elapsed_ms":null,"attempt":null,"success":true,"run_id":"good"})" << "\n";
    out << R"({"ts":7,"session_id":0,"host":null,"event":"connected","detail":null,"elapsed_ms":null,"attempt":null,"success":true})" << "\n";
    out << R"({"ts":"2026-01-01T00:00:00.000000+00:00","session_id":0,"event":"no_such_event","success":true})" << "\n";
    out << R"({"ts":"2026-01-01T00:00:00.000000+00:00","session_id":1e300,"event":"connected","success":true})" << "\n";
    out << R"({"ts":"2026-01-01T00:00:00.000000+00:00","session_id":0,"event":"connected","attempt":"three","success":true})" << "\n";
    out << R"({"ts":"2026-01-01T00:00:00.000000+00:00","event":"summary","abnormal_ends":-5,"success":true,"run_id":"x"})" << "\n";
    out << R"({"ts":"2026-01-01T00:00:00.000000+00:00","event":"summary","verdict":[1,2],"success":true,"run_id":"y"})" << "\n";
    out << "[1,2,3]\n";
    out << R"({"ts":"2026-01-01T00:00:00.000000+00:00","event":"connected","session_id":0,"suc)" << "\n";
    out << "{\"event\":\"connected\",\"detail\":\"" << std::string(17u << 20, 'a') << "\"}\n";
  }
  size_t n = std::count(text.begin(), text.end(), '\n');
  SoakProcess cmd({"report", bad});
  int rc = cmd.wait(60);
  EXPECT_EQ(rc, 0) << cmd.err();
  std::string err = cmd.err();
  auto named = [&](size_t offset, const std::string& what) {
    std::string where = bad + " line " + std::to_string(n + offset) + ": ";
    size_t at = err.find(where);
    EXPECT_NE(at, std::string::npos) << "line " << n + offset << " not named:\n" << err.substr(0, 3000);
    if (at != std::string::npos) {
      EXPECT_NE(err.substr(at, err.find('\n', at) - at).find(what), std::string::npos) << err.substr(at, 300);
    }
  };
  named(1, "field session_id: -5 ");
  named(2, "field ts: 7 ");
  named(3, "field event: \"no_such_event\" ");
  named(4, "field session_id: 1e+300 ");
  named(5, "field attempt: \"three\" ");
  named(6, "field abnormal_ends: -5 ");
  named(7, "field verdict:");
  named(8, "not a JSON object");
  named(9, "not a complete event");
  named(10, "bytes, longer than any line");
  EXPECT_EQ(cmd.out().find("4294967291"), std::string::npos);
  // The good run is read whole: one row, its two sessions.
  EXPECT_NE(cmd.out().find("| good | "), std::string::npos) << cmd.out();
  auto input = report::read({bad});
  ASSERT_EQ(input.runs.size(), 1u);
  EXPECT_EQ(input.runs[0].sessions, 2u);
  EXPECT_TRUE(input.runs[0].complete);
}
