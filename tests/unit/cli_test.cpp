#include "supervisor/cli.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "supervisor/exit_codes.h"
#include "supervisor/run/fault_relay.h"

using namespace sshsoak;
using namespace sshsoak::cli;

namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sshsoak-cli-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    key_ = (dir_ / "id_ed25519").string();
    std::ofstream(key_) << "not really a key\n";
    log_ = (dir_ / "run.jsonl").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<Options, UsageError> run(std::vector<std::string> args) {
    args.insert(args.begin(), "sshsoak");
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    return parse(static_cast<int>(argv.size()), argv.data(), [](const std::string& name) -> std::optional<std::string> {
      if (name == "SOAK_PASS") return std::string("s3cret");
      return std::nullopt;
    });
  }
  std::vector<std::string> base() { return {"--targets", "h1:2222", "--user", "u", "--key", key_, "--log-path", log_}; }
  std::vector<std::string> with(std::vector<std::string> extra) {
    auto a = base();
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  UsageError failure(std::vector<std::string> args) {
    auto r = run(std::move(args));
    EXPECT_FALSE(r.ok());
    return !r.ok() ? r.error() : UsageError{-1, ""};
  }

  std::filesystem::path dir_;
  std::string key_, log_;
};

}  // namespace

TEST_F(CliTest, PredecessorDefaults) {
  auto r = run(base());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& o = r.value();
  EXPECT_EQ(o.durationSecs, 1800u);
  EXPECT_EQ(o.pollIntervalSecs, 5u);
  EXPECT_EQ(o.intensity, wire::Intensity::MEDIUM);
  EXPECT_FALSE(o.disconnectAfterSecs.has_value());
  EXPECT_EQ(o.maxReconnectAttempts, 3u);
  EXPECT_EQ(o.reconnectTimeoutSecs, 15u);
  EXPECT_EQ(o.sessions, 10u);
  EXPECT_EQ(o.hostKeyPolicy, wire::HostKeyPolicy::ACCEPT_NEW);
  ASSERT_EQ(o.slots.size(), 10u);
  for (const auto& s : o.slots) EXPECT_EQ(s.text(), "h1:2222");
}

TEST_F(CliTest, DefaultLogPathIsThePredecessors) {
  std::vector<std::string> args = {"--targets", "h1:22", "--user", "u", "--key", key_};
  auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  auto r = run(args);
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().logPath, "spike2_results.jsonl");
}

TEST_F(CliTest, TargetsAreRepeatedToFillSessions) {
  auto r = run(with({"--targets", "a:22,b:2200,[::1]:2201", "--sessions", "7"}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& o = r.value();
  ASSERT_EQ(o.slots.size(), 7u);
  EXPECT_EQ(o.slots[0].text(), "a:22");
  EXPECT_EQ(o.slots[1].text(), "b:2200");
  EXPECT_EQ(o.slots[2].text(), "[::1]:2201");
  EXPECT_EQ(o.slots[3].text(), "a:22");
  EXPECT_EQ(o.slots[6].text(), "a:22");
}

TEST_F(CliTest, TargetWithoutPortIs22) {
  auto r = run(with({"--targets", "example"}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().slots[0].port, 22);
}

TEST_F(CliTest, AllFlagsParse) {
  auto r = run(with({"--passphrase", "pw", "--duration-secs", "60", "--poll-interval-secs", "2", "--intensity",
                     "high", "--disconnect-after-secs", "30", "--max-reconnect-attempts", "5",
                     "--reconnect-timeout-secs", "9", "--host-key-policy", "off", "--keepalive-interval-secs", "2",
                     "--keepalive-count-max", "4"}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& o = r.value();
  EXPECT_EQ(o.durationSecs, 60u);
  EXPECT_EQ(o.intensity, wire::Intensity::HIGH);
  EXPECT_EQ(*o.disconnectAfterSecs, 30u);
  EXPECT_EQ(o.maxReconnectAttempts, 5u);
  EXPECT_EQ(o.hostKeyPolicy, wire::HostKeyPolicy::OFF);
  EXPECT_EQ(o.passphrase, "pw");
  EXPECT_TRUE(o.passphraseOnCommandLine);
}

TEST_F(CliTest, PassphraseFromFileAndEnv) {
  auto file = (dir_ / "pass").string();
  std::ofstream(file) << "from-file\nignored\n";
  auto r = run(with({"--passphrase-file", file}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().passphrase, "from-file");
  EXPECT_FALSE(r.value().passphraseOnCommandLine);

  r = run(with({"--passphrase-env", "SOAK_PASS"}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value().passphrase, "s3cret");
  EXPECT_EQ(r.value().passphraseEnvName, "SOAK_PASS");

  auto f = failure(with({"--passphrase-env", "NOPE_NOT_SET"}));
  EXPECT_EQ(f.exitCode, exit_code::BAD_INPUT);
  EXPECT_NE(f.message.find("NOPE_NOT_SET"), std::string::npos);
  f = failure(with({"--passphrase", "a", "--passphrase-env", "SOAK_PASS"}));
  EXPECT_EQ(f.exitCode, exit_code::USAGE);
}

TEST_F(CliTest, EmbeddedDefaultNeedsNoArguments) {
  auto r = run({"--log-path", log_});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.value().embeddedDefault());
}

TEST_F(CliTest, HelpListsEveryPredecessorFlag) {
  auto f = failure({"--help"});
  EXPECT_EQ(f.exitCode, 0);
  for (const char* flag : {"--targets", "--user", "--key", "--passphrase", "--duration-secs", "--poll-interval-secs",
                           "--intensity", "--disconnect-after-secs", "--max-reconnect-attempts",
                           "--reconnect-timeout-secs", "--log-path", "--sessions", "--host-key-policy",
                           "--known-hosts", "--passphrase-file", "--passphrase-env"}) {
    EXPECT_NE(f.message.find(flag), std::string::npos) << flag;
  }
}

struct BadInput {
  std::vector<std::string> args;
  int exitCode;
  std::string mentions;
};

TEST_F(CliTest, BadInputIsNamedWithADistinctExitCode) {
  std::vector<BadInput> cases = {
      {{"--frobnicate"}, exit_code::USAGE, "--frobnicate"},
      {{"--key", "/nonexistent/key"}, exit_code::BAD_INPUT, "--key /nonexistent/key"},
      {{"--targets", "h:0"}, exit_code::USAGE, "port must be a number from 1 to 65535"},
      {{"--targets", "h:70000"}, exit_code::USAGE, "h:70000"},
      {{"--targets", "h:abc"}, exit_code::USAGE, "h:abc"},
      {{"--targets", ""}, exit_code::USAGE, "--targets is empty"},
      {{"--targets", " , "}, exit_code::USAGE, "--targets is empty"},
      {{"--duration-secs", "0"}, exit_code::USAGE, "--duration-secs"},
      {{"--intensity", "extreme"}, exit_code::USAGE, "--intensity 'extreme'"},
      {{"--host-key-policy", "maybe"}, exit_code::USAGE, "--host-key-policy"},
      {{"--log-path", "/nonexistent-dir/x.jsonl"}, exit_code::BAD_INPUT, "--log-path /nonexistent-dir/x.jsonl"},
      {{"--sessions", "0"}, exit_code::USAGE, "--sessions"},
      {{"--disconnect-after-secs", "0"}, exit_code::USAGE, "--disconnect-after-secs"},
      {{"--duration-secs", "-5"}, exit_code::USAGE, "--duration-secs"},
  };
  for (const auto& c : cases) {
    auto f = failure(with(c.args));
    EXPECT_EQ(f.exitCode, c.exitCode) << c.args[0] << ": " << f.message;
    EXPECT_NE(f.message.find(c.mentions), std::string::npos) << "message: " << f.message;
  }
  auto f = failure({"--targets", "h:22", "--key", key_, "--log-path", log_});
  EXPECT_EQ(f.exitCode, exit_code::USAGE);
  EXPECT_NE(f.message.find("--user"), std::string::npos);
}

TEST_F(CliTest, SupervisionAndVerdictDefaultsFollowTheDesign) {
  auto r = run(base());
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& o = r.value();
  EXPECT_EQ(o.restartMax, 5u);
  EXPECT_EQ(o.restartWindowSecs, 60u);
  EXPECT_EQ(o.sampleIntervalSecs, 1u);
  EXPECT_EQ(o.maxAbnormalEnds, 0u);
  EXPECT_DOUBLE_EQ(o.minReconnectRatePct, 90.0);
  EXPECT_EQ(o.maxReconnectP95Ms, 15000u);
  EXPECT_DOUBLE_EQ(o.maxMemoryMb, 200.0);
  EXPECT_DOUBLE_EQ(o.maxCpuPct, 5.0);
  EXPECT_TRUE(o.pidFile.empty());
  EXPECT_FALSE(o.crashSessionForTesting.has_value());
}

TEST_F(CliTest, SupervisionAndVerdictFlags) {
  auto r = run(with({"--restart-max", "3", "--restart-window-secs", "10", "--sample-interval-secs", "2",
                     "--max-abnormal-ends", "1", "--min-reconnect-rate-pct", "95.5", "--max-reconnect-p95-ms",
                     "5000", "--max-memory-mb", "64", "--max-cpu-pct", "2.5", "--sessions", "4",
                     "--crash-session-for-testing", "3"}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& o = r.value();
  EXPECT_EQ(o.restartMax, 3u);
  EXPECT_EQ(o.restartWindowSecs, 10u);
  EXPECT_EQ(o.sampleIntervalSecs, 2u);
  EXPECT_EQ(o.maxAbnormalEnds, 1u);
  EXPECT_DOUBLE_EQ(o.minReconnectRatePct, 95.5);
  EXPECT_EQ(o.maxReconnectP95Ms, 5000u);
  EXPECT_DOUBLE_EQ(o.maxMemoryMb, 64.0);
  EXPECT_DOUBLE_EQ(o.maxCpuPct, 2.5);
  EXPECT_EQ(o.crashSessionForTesting, 3u);

  EXPECT_EQ(failure(with({"--restart-max", "0"})).exitCode, exit_code::USAGE);
  EXPECT_EQ(failure(with({"--sample-interval-secs", "0"})).exitCode, exit_code::USAGE);
  EXPECT_EQ(failure(with({"--min-reconnect-rate-pct", "101"})).exitCode, exit_code::USAGE);
  EXPECT_EQ(failure(with({"--max-memory-mb", "0"})).exitCode, exit_code::USAGE);
  auto f = failure(with({"--sessions", "2", "--crash-session-for-testing", "2"}));
  EXPECT_EQ(f.exitCode, exit_code::USAGE);
  EXPECT_NE(f.message.find("--crash-session-for-testing 2"), std::string::npos) << f.message;
  f = failure(with({"--pid-file", "/no/such/dir/x.pid"}));
  EXPECT_EQ(f.exitCode, exit_code::BAD_INPUT);
  EXPECT_NE(f.message.find("/no/such/dir"), std::string::npos) << f.message;
}

TEST_F(CliTest, DropsAndFaultCommandsParse) {
  auto r = run(with({"--disconnect-after-secs", "10", "--drop", "30", "--drop", "20/60@0,2-3", "--fault-cmd",
                     "45:tc qdisc add dev lo root netem loss 100%", "--sessions", "4"}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& o = r.value();
  ASSERT_EQ(o.drops.size(), 3u);
  EXPECT_EQ(o.drops[0].text(), "at 10 s, all sessions");
  EXPECT_EQ(o.drops[1].text(), "at 30 s, all sessions");
  EXPECT_EQ(o.drops[2].text(), "at 20 s, every 60 s, sessions 0 2 3");
  ASSERT_EQ(o.faultCommands.size(), 1u);
  EXPECT_EQ(o.faultCommands[0].atSecs, 45u);
  EXPECT_EQ(o.faultCommands[0].command, "tc qdisc add dev lo root netem loss 100%");
}

TEST_F(CliTest, BadDropsAndFaultCommandsAreNamed) {
  std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--drop", "30x"}, "--drop '30x': expected AT[/EVERY][@SESSIONS]"},
      {{"--drop", "5@"}, "--drop '5@': no sessions after '@'"},
      {{"--drop", "5/0"}, "--drop '5/0': the period after '/' must be a whole number of seconds >= 1"},
      {{"--drop", "5@3-1"}, "--drop '5@3-1': bad session range '3-1'"},
      {{"--drop", "5@x"}, "--drop '5@x': bad session id 'x'"},
      {{"--drop", "5@12"}, "--drop at 5 s, sessions 12: session 12 does not exist (sessions are 0-9)"},
      {{"--drop", "5@4294967295"}, "--drop '5@4294967295': session 4294967295 does not exist"},
      {{"--drop", "5@0-100000"}, "--drop '5@0-100000': session 100000 does not exist"},
      {{"--fault-cmd", "5"}, "--fault-cmd '5': expected AT:COMMAND"},
      {{"--fault-cmd", "5: "}, "--fault-cmd '5: ': empty command"},
      {{"--targets", "[::1"}, "--targets '[::1': missing ']'"},
      {{"--targets", "[::1]x"}, "--targets '[::1]x': expected ':' after ']'"},
      {{"--targets", "a:b:c"}, "--targets 'a:b:c': write IPv6 addresses as [addr]:port"},
  };
  for (const auto& [args, mentions] : cases) {
    auto f = failure(with(args));
    EXPECT_EQ(f.exitCode, exit_code::USAGE) << f.message;
    EXPECT_NE(f.message.find(mentions), std::string::npos) << "message: " << f.message;
  }
}

TEST_F(CliTest, MinConnRateGivenIsRecordedSoALowChurnTargetIsJudgedAgainstItself) {
  auto given = base();
  for (const char* a : {"--workload", "churn", "--churn-rate", "20", "--min-conn-rate", "15"}) given.push_back(a);
  auto r = run(given);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r.value().minConnRateGiven);
  EXPECT_DOUBLE_EQ(r.value().minConnRatePerSec, 15.0);
  auto plain = base();
  for (const char* a : {"--workload", "churn", "--churn-rate", "20"}) plain.push_back(a);
  auto p = run(plain);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_FALSE(p.value().minConnRateGiven);
}

TEST_F(CliTest, ChurnRateTextRoundTripsThroughTheSharedParser) {
  auto r = parseChurnRate("10..500/60s");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.value().ramp());
  EXPECT_EQ(r.value().text(), "10..500/60s");
  EXPECT_FALSE(parseChurnRate("fast").ok());
}

TEST_F(CliTest, CheckpointAndRotationFlags) {
  auto d = run(base());
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d.value().checkpointSecs, 300u);
  EXPECT_EQ(d.value().logMaxMb, 0u);
  EXPECT_EQ(d.value().logKeep, 9u);
  EXPECT_FALSE(d.value().leakFdForTesting);
  EXPECT_EQ(d.value().leakKbForTesting, 0u);
  auto r = run(with({"--checkpoint-secs", "2", "--log-max-mb", "1", "--log-keep", "3", "--leak-fd-for-testing",
                     "--leak-kb-for-testing", "256"}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r.value().checkpointSecs, 2u);
  EXPECT_EQ(r.value().logMaxMb, 1u);
  EXPECT_EQ(r.value().logKeep, 3u);
  EXPECT_TRUE(r.value().leakFdForTesting);
  EXPECT_EQ(r.value().leakKbForTesting, 256u);
  auto off = run(with({"--checkpoint-secs", "0"}));
  ASSERT_TRUE(off.ok());
  EXPECT_EQ(off.value().checkpointSecs, 0u);
  auto f = failure(with({"--log-keep", "0"}));
  EXPECT_EQ(f.exitCode, exit_code::USAGE);
  EXPECT_NE(f.message.find("--log-keep"), std::string::npos) << f.message;
}

TEST_F(CliTest, ChurnReportsEverySecondOnARampAndLessOftenAtASteadyRate) {
  auto steady = run(with({"--workload", "churn", "--churn-rate", "20"}));
  ASSERT_TRUE(steady.ok()) << steady.error().message;
  EXPECT_EQ(steady.value().churnReportSecs, CHURN_STEADY_REPORT_SECS);
  // A ramp's report belongs to the step its midpoint falls in: short reports.
  auto ramp = run(with({"--workload", "churn", "--churn-rate", "10..50/50s"}));
  ASSERT_TRUE(ramp.ok()) << ramp.error().message;
  EXPECT_EQ(ramp.value().churnReportSecs, 1u);
  auto given = run(with({"--workload", "churn", "--churn-rate", "20", "--churn-report-secs", "1"}));
  ASSERT_TRUE(given.ok()) << given.error().message;
  EXPECT_EQ(given.value().churnReportSecs, 1u);
}

TEST_F(CliTest, LogDetailAndRollupFlags) {
  auto d = run(base());
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d.value().logDetail, LogDetail::ROLLUP);
  EXPECT_EQ(d.value().rollupSecs, 60u);
  auto full = run(with({"--log-detail", "full", "--rollup-secs", "5"}));
  ASSERT_TRUE(full.ok()) << full.error().message;
  EXPECT_EQ(full.value().logDetail, LogDetail::FULL);
  EXPECT_EQ(full.value().rollupSecs, 5u);
  EXPECT_NE(failure(with({"--log-detail", "some"})).message.find("--log-detail"), std::string::npos);
  EXPECT_NE(failure(with({"--rollup-secs", "0"})).message.find("--rollup-secs"), std::string::npos);
  auto leak = run(with({"--leak-fd-for-testing", "--leak-kb-for-testing", "4"}));
  ASSERT_TRUE(leak.ok()) << leak.error().message;
  EXPECT_TRUE(leak.value().leakFdForTesting);
  EXPECT_EQ(leak.value().leakKbForTesting, 4u);
}

// Found by fuzzing (fuzz/regressions/drop_spec/): the session list is bounded
// whatever the text says, each session listed once.
TEST(DropSpecTest, SessionListIsBoundedAndListsEachSessionOnce) {
  std::string text = "1@";
  for (int i = 0; i < 400; ++i) text += "0-999,";
  text += "3";
  auto d = parseDropSpec(text);
  ASSERT_TRUE(d.ok()) << d.error().message;
  ASSERT_EQ(d->sessions.size(), 1000u);
  EXPECT_EQ(d->sessions.front(), 0u);
  EXPECT_EQ(d->sessions.back(), 999u);
  auto last = parseDropSpec("1@999");
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_EQ(last->sessions, std::vector<uint32_t>{999});
}

// --fault / --fault-file (issue 16).
TEST_F(CliTest, NetFaultsFromFlagsAndFile) {
  auto none = run(base());
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->netFaults.empty());  // no relay in the path

  std::string file = (dir_ / "faults.txt").string();
  std::ofstream(file) << "# a comment\n\n  reset@40s/60s@1  # trailing comment\nslicer=64B/1ms\n";
  auto o = run(with({"--sessions", "4", "--fault", "latency=200ms~50ms@30s-90s@0-3", "--fault", "blackhole@20s+30s",
                     "--fault-file", file}));
  ASSERT_TRUE(o.ok()) << o.error().message;
  ASSERT_EQ(o->netFaults.size(), 4u);
  EXPECT_EQ(o->netFaults[0].given, "latency=200ms~50ms@30s-90s@0-3");
  EXPECT_EQ(o->netFaults[0].spec.kind, FaultKind::LATENCY);
  EXPECT_EQ(o->netFaults[1].spec.kind, FaultKind::BLACKHOLE);
  EXPECT_EQ(o->netFaults[2].given, "reset@40s/60s@1");
  EXPECT_EQ(o->netFaults[3].spec.kind, FaultKind::SLICER);
}

TEST(NetFaultLine, AShardsWindowNamesGlobalSessionIds) {
  // Shard 1/2 of 6 sessions runs 3..5; a SPEC names global ids, and so do
  // the line's sessions (the agents' lines carry global ids too).
  auto f = parseNetFault("reset@1s@2-4");
  ASSERT_TRUE(f.ok()) << f.error().message;
  std::vector<NetFault> faults{*f};
  Json report = {{"event", "window_started"}, {"fault_id", 0}, {"occurrence", 1}, {"connections", 2}};
  Json line = netFaultLine(report, faults, 3, 3);
  EXPECT_EQ(line["sessions"], Json::array({3, 4}));
  EXPECT_EQ(netFaultLine(report, faults, 3)["sessions"], Json::array({2}));
}

TEST_F(CliTest, BadNetFaultsAreUsageErrorsNamingTheInput) {
  auto bad = run(with({"--fault", "latency=200@30s"}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().exitCode, exit_code::USAGE);
  EXPECT_NE(bad.error().message.find("--fault 'latency=200@30s': the PARAMS '200'"), std::string::npos)
      << bad.error().message;
  EXPECT_NE(bad.error().message.find("e.g. 'latency=200ms~50ms@30s-90s@0-4'"), std::string::npos);

  auto beyond = run(with({"--sessions", "4", "--fault", "reset@30s@2-4"}));
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.error().exitCode, exit_code::USAGE);
  EXPECT_NE(beyond.error().message.find("session 4 does not exist (sessions are 0-3)"), std::string::npos)
      << beyond.error().message;

  std::string file = (dir_ / "faults.txt").string();
  std::ofstream(file) << "blackhole@20s+30s\n# fine\nreset@40s/60x\n";
  auto line = run(with({"--fault-file", file}));
  ASSERT_FALSE(line.ok());
  EXPECT_EQ(line.error().exitCode, exit_code::USAGE);
  EXPECT_NE(line.error().message.find("--fault-file " + file + ":3: 'reset@40s/60x'"), std::string::npos)
      << line.error().message;

  auto missing = run(with({"--fault-file", (dir_ / "nope.txt").string()}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().exitCode, exit_code::BAD_INPUT);
  EXPECT_NE(missing.error().message.find("nope.txt: cannot read it"), std::string::npos) << missing.error().message;
}
