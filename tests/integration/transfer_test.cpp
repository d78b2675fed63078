// --workload transfer against a real sshd, through the real sshsoak binary:
// clean rounds both ways, a flipped byte caught in either direction, a
// remote reader that stalls for seconds (reported, not a failure, the agent's
// memory and CPU stay down), and the session's supervision and reconnect
// still working under it (an agent SIGKILLed mid-transfer, a dropped link).
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "shared/clock.h"
#include "sshd_fixture.h"
#include "supervisor/exit_codes.h"

using namespace sshsoak;
using namespace sshsoak::testing;

namespace {

// Turns byte 1001 of the stream into another value (each byte value v
// becomes v + 1 mod 256), so the data always differs from what was sent.
const std::string FLIP_BYTE_1001 = "(head -c 1000; head -c 1 | LC_ALL=C tr '\\000-\\377' '\\001-\\377\\000'; cat)";

bool isSha256(const Json& v) {
  static const std::regex hex("[0-9a-f]{64}");
  return v.is_string() && std::regex_match(v.get<std::string>(), hex);
}

// The lines of `event` that come after the n-th (from 1) line of `after`.
std::vector<Json> linesAfter(const std::vector<Json>& lines, const std::string& after, size_t n,
                             const std::string& event) {
  std::vector<Json> out;
  size_t seen = 0;
  for (const auto& l : lines) {
    if (l["event"] == after) ++seen;
    else if (seen >= n && l["event"] == event) out.push_back(l);
  }
  return out;
}

// kB, from /proc/PID/status; 0 if the process is gone.
uint64_t vmRssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

// utime + stime in clock ticks, from /proc/PID/stat.
uint64_t cpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) {
      stime = std::stoull(f);
      break;
    }
  }
  return utime + stime;
}

// Every finished round of the log: both ends agreed, the sizes asked for.
void expectCleanRounds(const std::vector<Json>& rounds, uint64_t bytes) {
  for (const auto& r : rounds) {
    EXPECT_EQ(r["success"], true) << r.dump();
    EXPECT_EQ(r["bytes"], bytes) << r.dump();
    EXPECT_TRUE(isSha256(r["sha256"])) << r.dump();
    EXPECT_GT(r["mb_per_sec"].get<double>(), 0.0) << r.dump();
  }
}

}  // namespace

class Transfer : public SshdTest {
 protected:
  // The transfer workload's own figures are judged by the analysis; CPU is
  // what it spends on purpose, so these tests judge neither.
  std::vector<std::string> transferArgs(std::vector<std::string> extra) const {
    std::vector<std::string> args = {"--workload", "transfer", "--min-throughput-mbps", "0", "--max-cpu-pct", "1000"};
    args.insert(args.end(), extra.begin(), extra.end());
    return soakArgs(args);
  }
};

TEST_F(Transfer, CleanRoundsBothWaysEveryChecksumAgrees) {
  auto r = runSoak(transferArgs({"--sessions", "2", "--duration-secs", "4", "--transfer-mb", "8",
                                 "--transfer-window-kb", "1024", "--transfer-write-kb", "64"}),
                   60);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  EXPECT_TRUE(linesOf(r.lines, "transfer_corrupt").empty());
  EXPECT_TRUE(linesOf(r.lines, "transfer_error").empty());
  std::set<std::string> hashes;
  for (int session : {0, 1}) {
    auto rounds = ofSession(r.lines, "transfer_round", session);
    ASSERT_GE(rounds.size(), 2u) << "session " << session << "\n" << r.err;
    expectCleanRounds(rounds, 8'000'000);
    // Up, down, up, ... numbered from 1.
    for (size_t i = 0; i < rounds.size(); ++i) {
      EXPECT_EQ(rounds[i]["round"], i + 1) << rounds[i].dump();
      EXPECT_EQ(rounds[i]["direction"], i % 2 == 0 ? "up" : "down") << rounds[i].dump();
      EXPECT_EQ(rounds[i]["window_bytes"], 1024 * 1024);
      EXPECT_EQ(rounds[i]["write_bytes"], 64 * 1024);
      hashes.insert(rounds[i]["sha256"].get<std::string>());
    }
  }
  // New data every round, in every agent.
  EXPECT_EQ(hashes.size(), linesOf(r.lines, "transfer_round").size());
}

TEST_F(Transfer, ShellNoiseOnEitherStreamDoesNotConfuseTheChecksum) {
  // Noise before and after the checksum, one of it hex but not 64 digits.
  std::string up = "echo 'pyenv: cannot rehash'; echo 'pyenv: noise' >&2; sha256sum; echo deadbeef; echo bye >&2";
  std::string down = "echo 'pyenv: noise' >&2; exec 3>&1; head -c {bytes} /dev/urandom | tee /dev/fd/3 | "
                     "sha256sum >&2; echo 'trailing deadbeef' >&2";
  auto r = runSoak(transferArgs({"--sessions", "1", "--duration-secs", "2", "--transfer-mb", "2",
                                 "--transfer-up-cmd", up, "--transfer-down-cmd", down}),
                   60);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  auto rounds = linesOf(r.lines, "transfer_round");
  ASSERT_GE(rounds.size(), 2u) << r.err;
  expectCleanRounds(rounds, 2'000'000);
  EXPECT_TRUE(linesOf(r.lines, "transfer_corrupt").empty());
  EXPECT_TRUE(linesOf(r.lines, "transfer_error").empty());
}

TEST_F(Transfer, AFlippedByteIsCaughtInBothDirections) {
  std::string up = FLIP_BYTE_1001 + " | sha256sum";
  // Sends the data as it came, hashes it with one byte flipped.
  std::string down = "exec 3>&1; head -c {bytes} /dev/urandom | tee /dev/fd/3 | " + FLIP_BYTE_1001 + " | sha256sum >&2";
  auto r = runSoak(transferArgs({"--sessions", "1", "--duration-secs", "3", "--transfer-mb", "2",
                                 "--transfer-up-cmd", up, "--transfer-down-cmd", down}),
                   60);
  // Corrupt rounds fail the run's verdict, end to end.
  EXPECT_EQ(r.exitCode, exit_code::CRITERIA_FAILED) << r.err;
  auto summary = linesOf(r.lines, "summary");
  ASSERT_EQ(summary.size(), 1u) << r.err;
  bool corruptCriterionFailed = false;
  for (const auto& c : summary[0]["verdict"]) {
    if (c["criterion"] == "corrupt_rounds") corruptCriterionFailed = c["result"] == "fail";
  }
  EXPECT_TRUE(corruptCriterionFailed) << summary[0]["verdict"].dump();
  EXPECT_TRUE(linesOf(r.lines, "transfer_round").empty());
  EXPECT_TRUE(linesOf(r.lines, "transfer_error").empty());
  auto corrupt = linesOf(r.lines, "transfer_corrupt");
  ASSERT_GE(corrupt.size(), 2u) << r.err;
  std::set<std::string> directions;
  for (const auto& c : corrupt) {
    EXPECT_EQ(c["success"], false) << c.dump();
    EXPECT_EQ(c["bytes"], 2'000'000) << c.dump();
    EXPECT_TRUE(isSha256(c["local_sha256"])) << c.dump();
    EXPECT_TRUE(isSha256(c["remote_sha256"])) << c.dump();
    EXPECT_NE(c["local_sha256"], c["remote_sha256"]) << c.dump();
    directions.insert(c["direction"].get<std::string>());
  }
  EXPECT_EQ(directions, (std::set<std::string>{"up", "down"}));
}

TEST_F(Transfer, ARemoteThatSendsNoChecksumOrTooFewBytesIsCorrupt) {
  // Up: a reader that prints nothing; down: one byte short of the round.
  auto r = runSoak(transferArgs({"--sessions", "1", "--duration-secs", "2", "--transfer-mb", "1",
                                 "--transfer-up-cmd", "cat >/dev/null",
                                 "--transfer-down-cmd",
                                 "exec 3>&1; head -c {bytes} /dev/urandom | head -c 999999 | tee /dev/fd/3 | sha256sum >&2"}),
                   60);
  auto corrupt = linesOf(r.lines, "transfer_corrupt");
  ASSERT_GE(corrupt.size(), 2u) << r.err;
  bool sawUp = false, sawDown = false;
  for (const auto& c : corrupt) {
    if (c["direction"] == "up") {
      sawUp = true;
      EXPECT_EQ(c["remote_sha256"], "") << c.dump();
      EXPECT_NE(c["detail"].get<std::string>().find("no SHA-256"), std::string::npos) << c.dump();
    } else {
      sawDown = true;
      // The remote's checksum is right for what it sent; the count is not.
      EXPECT_EQ(c["bytes"], 999'999) << c.dump();
      EXPECT_EQ(c["local_sha256"], c["remote_sha256"]) << c.dump();
    }
  }
  EXPECT_TRUE(sawUp && sawDown) << r.err;
}

TEST_F(Transfer, AStalledReaderIsReportedNotFailedAndTheAgentStaysSmallAndIdle) {
  // sshd buffers about one window (2 MB) for the sleeping command; the
  // other 62 MB of the round are the agent's to hold back, not to buffer.
  const uint64_t windowKb = 2048, writeKb = 256;
  SoakProcess soak(transferArgs({"--sessions", "1", "--duration-secs", "60", "--transfer-mb", "64",
                                 "--transfer-direction", "up", "--transfer-up-cmd", "sleep 4; sha256sum",
                                 "--transfer-stall-secs", "1", "--transfer-window-kb", std::to_string(windowKb),
                                 "--transfer-write-kb", std::to_string(writeKb)}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "connected").empty(); }, 30)) << soak.err();
  auto started = linesOf(readJsonl(logPath_), "agent_started");
  ASSERT_EQ(started.size(), 1u);
  pid_t agent = started[0]["pid"].get<pid_t>();
  // Mid-stall: the remote sleeps for 4 s from the round's start.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  uint64_t ticksBefore = cpuTicks(agent);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  uint64_t ticksAfter = cpuTicks(agent);
  uint64_t rssKb = vmRssKb(agent);
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "transfer_round").empty(); }, 40)) << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();

  // The agent's own code, libraries and libssh2's buffers, plus at most a
  // window and a write: nowhere near the round's 64 MB.
#ifdef SSHSOAK_TESTS_UNDER_ASAN
  const uint64_t baseKb = 96 * 1024;  // shadow memory and ASan's allocator
#else
  const uint64_t baseKb = 16 * 1024;  // ~9 MB measured, most of it shared libraries
#endif
  EXPECT_GT(rssKb, 0u);
  EXPECT_LT(rssKb, baseKb + windowKb + writeKb) << "agent VmRSS while stalled";
  // Asleep in poll() while nothing moves: 1.5 s of stall, at most 0.1 s of CPU.
  long ticksPerSec = ::sysconf(_SC_CLK_TCK);
  EXPECT_LE((ticksAfter - ticksBefore) * 1000 / static_cast<uint64_t>(ticksPerSec), 100u) << "ms of CPU while stalled";

  auto lines = readJsonl(logPath_);
  EXPECT_TRUE(linesOf(lines, "transfer_error").empty());
  EXPECT_TRUE(linesOf(lines, "transfer_corrupt").empty());
  auto stalls = linesOf(lines, "transfer_stall");
  ASSERT_GE(stalls.size(), 1u);
  const auto& stall = stalls[0];
  EXPECT_EQ(stall["round"], 1);
  EXPECT_EQ(stall["direction"], "up");
  EXPECT_EQ(stall["success"], true);
  EXPECT_GE(stall["stalled_ms"].get<int64_t>(), 2000) << stall.dump();
  EXPECT_LT(stall["stalled_ms"].get<int64_t>(), 10000) << stall.dump();
  EXPECT_LE(stall["buffered_bytes"].get<uint64_t>(), writeKb * 1024) << stall.dump();
  auto rounds = linesOf(lines, "transfer_round");
  expectCleanRounds(rounds, 64'000'000);
  EXPECT_GE(rounds[0]["stalled_ms"].get<int64_t>(), stall["stalled_ms"].get<int64_t>()) << rounds[0].dump();
}

TEST_F(Transfer, AnAgentKilledMidTransferIsRestartedAndTransfersAgain) {
  SoakProcess soak(transferArgs({"--sessions", "1", "--duration-secs", "60", "--transfer-mb", "32"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "transfer_round").empty(); }, 30)) << soak.err();
  pid_t victim = linesOf(readJsonl(logPath_), "agent_started").at(0)["pid"].get<pid_t>();
  // Rounds follow each other without a pause: the next one is under way.
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(waitForLog(
      [](const auto& l) { return !linesAfter(l, "agent_crashed", 1, "transfer_round").empty(); }, 40))
      << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::CRITERIA_FAILED) << soak.err();  // a crash is an abnormal end

  auto lines = readJsonl(logPath_);
  auto crashed = linesOf(lines, "agent_crashed");
  ASSERT_EQ(crashed.size(), 1u);
  EXPECT_EQ(crashed[0]["signal_name"], "SIGKILL");
  auto started = linesOf(lines, "agent_started");
  ASSERT_EQ(started.size(), 2u);
  EXPECT_EQ(started[1]["restart"], 1);
  auto after = linesAfter(lines, "agent_crashed", 1, "transfer_round");
  expectCleanRounds(after, 32'000'000);
  // The new agent counts its own rounds.
  EXPECT_EQ(after.at(0)["round"], 1);
  EXPECT_TRUE(linesOf(lines, "transfer_corrupt").empty());
}

TEST_F(Transfer, ADroppedConnectionReconnectsAndTheRoundsGoOn) {
  // Small rounds, so that some finish before the drop even on a slow (ASan) build.
  SoakProcess soak(transferArgs({"--sessions", "1", "--duration-secs", "60", "--transfer-mb", "8", "--drop", "3"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog(
      [](const auto& l) { return !linesAfter(l, "reconnected", 1, "transfer_round").empty(); }, 40))
      << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();

  auto lines = readJsonl(logPath_);
  EXPECT_EQ(linesOf(lines, "disconnect_injected").size(), 1u);
  ASSERT_EQ(linesOf(lines, "reconnected").size(), 1u);
  // The drop cut a round short: that is the session's disconnect, not a
  // transfer error and never a corrupt round.
  EXPECT_TRUE(linesOf(lines, "transfer_corrupt").empty());
  EXPECT_TRUE(linesOf(lines, "transfer_error").empty());
  expectCleanRounds(linesOf(lines, "transfer_round"), 8'000'000);
  // Rounds before and after the drop.
  auto all = linesOf(lines, "transfer_round");
  EXPECT_GT(all.size(), linesAfter(lines, "disconnect_injected", 1, "transfer_round").size());
  EXPECT_TRUE(linesOf(lines, "agent_crashed").empty());
}

TEST_F(Transfer, ARoundWithoutProgressIsGivenUpAndTheSessionKept) {
  // The first round's command never reads; later ones do. With a 1 s stall
  // and a 2 s step timeout the round is given up after max(2, 10 x 1) s.
  std::string flag = workDir_ + "/stalled-once";
  std::string up = "if [ -e " + flag + " ]; then sha256sum; else touch " + flag + "; sleep 12; fi";
  SoakProcess soak(transferArgs({"--sessions", "1", "--duration-secs", "60", "--transfer-mb", "16",
                                 "--transfer-direction", "up", "--transfer-up-cmd", up, "--transfer-stall-secs", "1",
                                 "--reconnect-timeout-secs", "2"}),
                   /*stdinPipe=*/true);
  ASSERT_TRUE(waitForLog([](const auto& l) { return !linesOf(l, "transfer_round").empty(); }, 40)) << soak.err();
  soak.writeStdin("q\n");
  EXPECT_EQ(soak.wait(30), exit_code::PASSED) << soak.err();

  auto lines = readJsonl(logPath_);
  auto errors = linesOf(lines, "transfer_error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0]["category"], "timeout") << errors[0].dump();
  EXPECT_NE(errors[0]["message"].get<std::string>().find("no progress for 10000 ms"), std::string::npos)
      << errors[0].dump();
  // The stall was reported when the round ended, before its error.
  auto stalls = linesOf(lines, "transfer_stall");
  ASSERT_EQ(stalls.size(), 1u);
  EXPECT_GE(stalls[0]["stalled_ms"].get<int64_t>(), 10000) << stalls[0].dump();
  // Only the channel was dropped: the same session goes on with round 2.
  EXPECT_TRUE(linesOf(lines, "disconnected").empty());
  EXPECT_EQ(linesOf(lines, "connected").size(), 1u);
  auto rounds = linesOf(lines, "transfer_round");
  expectCleanRounds(rounds, 16'000'000);
  EXPECT_EQ(rounds.at(0)["round"], 2);
}

TEST_F(Transfer, AnUpCommandThatStopsReadingIsAnErrorRetriedAfterAPause) {
  auto r = runSoak(transferArgs({"--sessions", "1", "--duration-secs", "3", "--transfer-mb", "8",
                                 "--transfer-direction", "up", "--transfer-up-cmd",
                                 "head -c 1000 >/dev/null; echo 'no more' >&2"}),
                   60);
  auto errors = linesOf(r.lines, "transfer_error");
  ASSERT_GE(errors.size(), 2u) << r.err;
  int64_t previousNs = 0;
  for (const auto& e : errors) {
    EXPECT_EQ(e["category"], "channel") << e.dump();
    auto message = e["message"].get<std::string>();
    EXPECT_NE(message.find("must read its stdin to EOF"), std::string::npos) << message;
    EXPECT_NE(message.find("its stderr ends: no more)"), std::string::npos) << message;
    // Not retried in a tight loop.
    int64_t ns = parseIsoTimestamp(e["ts"].get<std::string>());
    if (previousNs != 0) {
      EXPECT_GE(ns - previousNs, 900'000'000) << e.dump();
    }
    previousNs = ns;
  }
  // The channel's failure, not the session's.
  EXPECT_TRUE(linesOf(r.lines, "disconnected").empty());
  EXPECT_TRUE(linesOf(r.lines, "transfer_corrupt").empty());
  EXPECT_TRUE(linesOf(r.lines, "transfer_round").empty());
}
