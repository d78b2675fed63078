// Checked at start (docs/reference.md, "Hardening"): a key the agents cannot
// use is refused before anything is started; a key they can use but a
// server may refuse is warned about and its run goes on; a run that cannot
// fit the open-files limit is refused; the private sshd's directory (its
// keys) is 0700 and a SIGKILLed run's is removed at the next start, never a
// live run's. Real keys from ssh-keygen, the real binary, a real sshd.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "shared/clock.h"
#include "supervisor/exit_codes.h"
#include "sshd_fixture.h"

using namespace sshsoak;
using namespace sshsoak::testing;
namespace fs = std::filesystem;

namespace {

void keygen(std::vector<std::string> args) {
  args.insert(args.begin(), "-q");
  std::string out;
  ASSERT_EQ(runProgram("/usr/bin/ssh-keygen", args, &out), 0) << out;
}

mode_t modeOf(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The private sshd's dir an embedded run names on its console, once it has.
std::string waitForSshdDir(SoakProcess& soak, int timeoutSecs) {
  int64_t deadline = monoMs() + int64_t{timeoutSecs} * 1000;
  while (monoMs() < deadline) {
    std::string err = soak.err();
    auto at = err.find("client keys in ");
    auto end = at == std::string::npos ? std::string::npos : err.find(';', at);
    if (end != std::string::npos) return err.substr(at + 15, end - at - 15);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

class StartupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/sshsoak-startup-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string at(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

// Each bad key: exit 3 within a second or two, the key's path and the fix on
// stderr, no agent started (the agent named is a script that would leave a
// mark) and no line written: the run never began, so the log (an earlier
// run's line here) is left as it was.
TEST_F(StartupTest, EachBadKeyExits3AtOnceBeforeAnyAgentStarts) {
  keygen({"-t", "ed25519", "-a", "4", "-N", "right-pass", "-f", at("encrypted")});
  std::string whole = readText(at("encrypted"));
  std::ofstream(at("truncated")) << whole.substr(0, whole.size() / 2);
  std::ofstream(at("putty.ppk")) << "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n";
  std::ofstream(at("wrong-pass")) << "not-the-pass\n";
  std::string marker = at("agent-started");
  std::ofstream(at("agent.sh")) << "#!/bin/sh\ntouch " << marker << "\nexec " << SSHSOAK_AGENT_BIN << " \"$@\"\n";
  ::chmod(at("agent.sh").c_str(), 0755);
  const std::string earlier = "{\"event\":\"an earlier run's line\"}\n";
  std::ofstream(at("run.jsonl")) << earlier;

  struct Case {
    std::string key;
    std::vector<std::string> extra;
    std::string says;
  };
  std::vector<Case> cases = {
      {at("encrypted"), {}, "encrypted and no passphrase was given"},
      {at("encrypted"), {"--passphrase-file", at("wrong-pass")}, "wrong passphrase"},
      {at("encrypted.pub"), {}, "is a public key"},
      {at("truncated"), {}, "truncated"},
      {at("putty.ppk"), {}, "puttygen"},
      // As root permissions do not stop a read: a directory and a missing
      // path stand for an unreadable key (the command line's own check).
      {dir_, {}, "not a regular file"},
      {at("missing"), {}, "No such file"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"--targets",     "127.0.0.1:9",   "--user",     "nobody",
                                     "--key",         c.key,           "--known-hosts", at("known_hosts"),
                                     "--log-path",    at("run.jsonl"), "--agent-path",  at("agent.sh"),
                                     "--duration-secs", "30"};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    int64_t startMs = monoMs();
    SoakProcess soak(args);
    int code = soak.wait(10);
    int64_t tookMs = monoMs() - startMs;
    std::string err = soak.err();
    EXPECT_EQ(code, exit_code::BAD_INPUT) << c.key << ": " << err;
    EXPECT_LT(tookMs, 2000) << c.key;
    EXPECT_NE(err.find("--key " + c.key + ": "), std::string::npos) << err;
    EXPECT_NE(err.find(c.says), std::string::npos) << err;
    EXPECT_FALSE(fs::exists(marker)) << c.key << ": an agent was started";
    EXPECT_EQ(readText(at("run.jsonl")), earlier) << c.key << ": the log was written to";
  }
}

// A usable key's check agrees with the server: an ECDSA key in PKCS#8
// authenticates for real, and an RSA key is warned about and then refused
// by this OpenSSH (>= 8.8) exactly as the warning says.
TEST_F(SshdTest, AKeyThatPassesTheStartCheckAuthenticatesAndAnRsaKeyIsWarnedAbout) {
  std::string ecdsa = workDir_ + "/ecdsa_pkcs8", rsa = workDir_ + "/rsa";
  keygen({"-t", "ecdsa", "-N", "", "-m", "PKCS8", "-f", ecdsa});
  keygen({"-t", "rsa", "-b", "2048", "-N", "", "-f", rsa});
  std::ofstream(sshd_->authorizedKeysPath(), std::ios::app) << readText(ecdsa + ".pub") << readText(rsa + ".pub");

  auto args = soakArgs({"--sessions", "1", "--duration-secs", "1"});
  args[5] = ecdsa;  // --key's value
  auto r = runSoak(args, 30);
  EXPECT_EQ(r.exitCode, exit_code::PASSED) << r.err;
  EXPECT_EQ(linesOf(r.lines, "connected").size(), 1u) << r.err;

  fs::remove(logPath_);
  args[5] = rsa;
  r = runSoak(args, 30);
  EXPECT_NE(r.err.find("is an RSA key: libssh2 1.10 signs with SHA-1"), std::string::npos) << r.err;
  ASSERT_FALSE(linesOf(r.lines, "run_started").empty()) << "an RSA key is warned about, not refused";
  auto failed = linesOf(r.lines, "connect_failed");
  ASSERT_FALSE(failed.empty()) << r.err;
  EXPECT_EQ(failed[0]["category"], "auth");
}

// A run that cannot fit the open-files limit is refused at start (exit 71),
// naming the limit and the fix, before the private sshd is started.
TEST_F(StartupTest, ARunThatCannotFitTheOpenFilesLimitIsRefusedAtStart) {
  std::string out;
  int64_t startMs = monoMs();
  int code = runProgram("/usr/bin/prlimit", {"--nofile=64:64", SSHSOAK_BIN, "--sessions", "100", "--log-path",
                                             at("run.jsonl")},
                        &out);
  EXPECT_LT(monoMs() - startMs, 2000);
  EXPECT_EQ(code, exit_code::SYSTEM) << out;
  EXPECT_NE(out.find("100 sessions need about"), std::string::npos) << out;
  EXPECT_NE(out.find("RLIMIT_NOFILE) is 64"), std::string::npos) << out;
  EXPECT_NE(out.find("ulimit -n"), std::string::npos) << out;
  EXPECT_EQ(out.find("private OpenSSH sshd"), std::string::npos) << "the sshd was started: " << out;
  // The command line's check that the log is writable creates it; no line.
  EXPECT_EQ(readText(at("run.jsonl")), "");
}

// The private sshd's dir holds private keys: 0700, keys 0600. A SIGKILLed
// run leaves it (no destructor runs); the next run removes it at start; a
// second run started while another lives leaves the live one's alone.
TEST_F(StartupTest, ASigkilledRunsSshdDirIsRemovedAtTheNextStartAndALiveOnesIsNot) {
  auto embedded = [&](const std::string& name, const std::string& secs) {
    return std::vector<std::string>{"--duration-secs", secs, "--sessions", "1", "--log-path", at(name + ".jsonl"),
                                     "--max-cpu-pct", "100", "--max-memory-mb", "1000"};
  };
  std::string killedDir;
  {
    SoakProcess first(embedded("first", "60"));
    killedDir = waitForSshdDir(first, 20);
    ASSERT_NE(killedDir, "") << first.err();
    EXPECT_EQ(modeOf(killedDir), 0700u);
    EXPECT_EQ(modeOf(killedDir + "/client_ed25519"), 0600u);
    EXPECT_EQ(modeOf(killedDir + "/host_ed25519"), 0600u);
    EXPECT_EQ(modeOf(killedDir + "/authorized_keys"), 0600u);
    EXPECT_EQ(modeOf(killedDir + "/sshd_config"), 0600u);
    ::kill(first.pid(), SIGKILL);
    first.wait(10);
  }
  ASSERT_TRUE(fs::exists(killedDir)) << "a SIGKILLed run cannot clean up: the next start must";
  EXPECT_EQ(modeOf(killedDir), 0700u);

  SoakProcess second(embedded("second", "60"));
  std::string liveDir = waitForSshdDir(second, 20);
  ASSERT_NE(liveDir, "") << second.err();
  EXPECT_FALSE(fs::exists(killedDir)) << killedDir << " was not removed by the next start";
  EXPECT_NE(second.err().find("removed a dead run's private sshd dir " + killedDir), std::string::npos)
      << second.err();

  // A third run, start to end, while the second lives: the second's dir
  // stays, and the third's own is gone when it ends.
  {
    SoakProcess third(embedded("third", "1"));
    std::string thirdDir = waitForSshdDir(third, 20);
    EXPECT_EQ(third.wait(30), exit_code::PASSED) << third.err();
    EXPECT_NE(thirdDir, "");
    EXPECT_FALSE(fs::exists(thirdDir));
    EXPECT_EQ(third.err().find("removed a dead run's private sshd dir " + liveDir), std::string::npos);
  }
  EXPECT_TRUE(fs::exists(liveDir)) << "a concurrent run removed a live run's dir";
  // And this process's own check agrees: the live one is not stale.
  for (const std::string& removed : LocalSshd::removeStale()) EXPECT_NE(removed, liveDir);
  EXPECT_TRUE(fs::exists(liveDir));

  ::kill(second.pid(), SIGKILL);
  second.wait(10);
  auto removed = LocalSshd::removeStale();
  EXPECT_NE(std::find(removed.begin(), removed.end(), liveDir), removed.end());
  EXPECT_FALSE(fs::exists(liveDir));
}

}  // namespace

namespace {

// A failure after the log is open still leaves the run's lines: its
// run_started and a run_aborted saying why (here --pid-file names a
// directory, found only when the pid file is written), and report says the
// run did not start.
TEST_F(StartupTest, AFailureAfterTheLogIsOpenEndsTheLogWithRunAborted) {
  keygen({"-t", "ed25519", "-N", "", "-f", at("key")});
  fs::create_directory(at("pid-dir"));
  SoakProcess soak({"--targets", "127.0.0.1:9", "--user", "nobody", "--key", at("key"), "--known-hosts",
                    at("known_hosts"), "--log-path", at("run.jsonl"), "--pid-file", at("pid-dir"), "--duration-secs",
                    "30", "--run-id", "aborted-run"});
  EXPECT_EQ(soak.wait(10), exit_code::BAD_INPUT) << soak.err();
  EXPECT_NE(soak.err().find(at("pid-dir")), std::string::npos) << soak.err();
  auto lines = readJsonl(at("run.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["event"], "run_started");
  EXPECT_EQ(lines[1]["event"], "run_aborted");
  EXPECT_EQ(lines[1]["success"], false);
  EXPECT_EQ(lines[1]["run_id"], "aborted-run");
  EXPECT_EQ(lines[1]["exit_code"], exit_code::BAD_INPUT);
  EXPECT_NE(lines[1]["detail"].get<std::string>().find(at("pid-dir")), std::string::npos) << lines[1].dump();

  std::string out;
  runProgram(SSHSOAK_BIN, {"report", at("run.jsonl")}, &out);
  EXPECT_NE(out.find("did not start: "), std::string::npos) << out;
}

}  // namespace
