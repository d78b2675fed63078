#include "supervisor/cli.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "supervisor/exit_codes.h"

namespace sshsoak::cli {

namespace {

ParseFailure usage(const std::string& message) {
  return ParseFailure{exit_code::USAGE, "sshsoak: " + message + "\nRun 'sshsoak --help' for the flags."};
}

ParseFailure badInput(const std::string& message) {
  return ParseFailure{exit_code::BAD_INPUT, "sshsoak: " + message};
}

std::optional<std::string> realEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

std::variant<Target, std::string> parseTarget(std::string text) {
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
    return s;
  };
  text = trim(text);
  if (text.empty()) return std::string("empty entry");
  Target t;
  std::string portText;
  if (text.front() == '[') {  // [v6]:port
    auto close = text.find(']');
    if (close == std::string::npos) return "'" + text + "': missing ']'";
    t.host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') return "'" + text + "': expected ':' after ']'";
      portText = text.substr(close + 2);
    }
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string::npos && text.find(':') != colon) {
      return "'" + text + "': write IPv6 addresses as [addr]:port";
    }
    t.host = text.substr(0, colon);
    if (colon != std::string::npos) portText = text.substr(colon + 1);
  }
  if (t.host.empty()) return "'" + text + "': no host";
  if (!portText.empty() || text.back() == ':') {
    char* end = nullptr;
    errno = 0;
    long port = std::strtol(portText.c_str(), &end, 10);
    if (portText.empty() || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
      return "'" + text + "': port must be a number from 1 to 65535";
    }
    t.port = static_cast<uint16_t>(port);
  }
  return t;
}

bool readableFile(const std::string& path, std::string& why) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    why = std::strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    why = "not a regular file";
    return false;
  }
  if (::access(path.c_str(), R_OK) != 0) {
    why = std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

std::string Target::text() const {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::variant<Options, ParseFailure> parse(int argc, const char* const* argv, EnvReader env) {
  if (env == nullptr) env = realEnv;
  Options o;
  std::string targets, intensity = "medium", hostKeyPolicy = "accept-new", passphraseFile,
                       passphraseEnv;
  bool passphraseGiven = false;
  uint32_t disconnectAfter = 0;

  CLI::App app{
      "sshsoak: soak- and stress-test SSH connection management.\n"
      "Holds N real SSH sessions (one agent process each) under a PTY + exec-poll workload,\n"
      "breaks them on purpose, measures everything and ends with a verdict.\n"
      "With no --targets it starts a private OpenSSH sshd on 127.0.0.1 with throwaway keys.",
      "sshsoak"};
  app.option_defaults()->always_capture_default()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.get_formatter()->column_width(36);

  // The predecessor's flags, same names and defaults.
  app.add_option("--targets", targets, "Comma-separated host:port list, repeated to fill the sessions "
                                       "(default: a private sshd on 127.0.0.1)");
  app.add_option("--user", o.user, "SSH user name (required with --targets)");
  app.add_option("--key", o.keyPath, "Private key file for public-key auth (required with --targets; use ed25519)");
  auto* passOpt = app.add_option("--passphrase", o.passphrase,
                                 "Key passphrase (WARNING: visible in ps and shell history; prefer "
                                 "--passphrase-file or --passphrase-env)");
  app.add_option("--duration-secs", o.durationSecs, "Total run duration (60 with the private sshd)");
  app.add_option("--poll-interval-secs", o.pollIntervalSecs, "Exec poll interval");
  app.add_option("--intensity", intensity, "PTY output intensity: low | medium | high");
  auto* disconnectOpt = app.add_option("--disconnect-after-secs", disconnectAfter,
                                       "Inject a disconnect on all sessions after N seconds");
  disconnectOpt->default_str("none");
  app.add_option("--max-reconnect-attempts", o.maxReconnectAttempts,
                 "Max reconnect tries per session per disconnect");
  app.add_option("--reconnect-timeout-secs", o.reconnectTimeoutSecs,
                 "Deadline for one connect (TCP + SSH + auth + first exec)");
  app.add_option("--log-path", o.logPath, "JSONL event log (appended to)");
  // Ours.
  auto* sessionsOpt = app.add_option("--sessions", o.sessions, "Number of concurrent sessions (agents)");
  app.add_option("--host-key-policy", hostKeyPolicy,
                 "Host key checking: strict | accept-new | off");
  app.add_option("--known-hosts", o.knownHostsPath, "known_hosts file (default ~/.ssh/known_hosts)");
  app.add_option("--passphrase-file", passphraseFile, "Read the key passphrase from this file (first line)");
  app.add_option("--passphrase-env", passphraseEnv,
                 "Read the key passphrase from this environment variable (then removed from the environment)");
  app.add_option("--keepalive-interval-secs", o.keepaliveIntervalSecs,
                 "Send a keepalive every N seconds (OpenSSH ServerAliveInterval)");
  app.add_option("--keepalive-count-max", o.keepaliveCountMax,
                 "Dead after this many intervals with nothing received (ServerAliveCountMax)");
  app.add_option("--pty-interval-secs", o.ptyIntervalSecs,
                 "Pause between PTY bursts (the remote loop's sleep; fractions allowed)");
  app.add_option("--backoff-base-ms", o.backoffBaseMs,
                 "Reconnect backoff: attempt k waits uniform in [0, min(cap, base * 2^k)]");
  app.add_option("--backoff-cap-ms", o.backoffCapMs, "Reconnect backoff ceiling");
  app.add_option("--token-rate", o.tokenRatePerSec,
                 "Connects per second allowed across all sessions (shared token bucket)");
  app.add_option("--token-burst", o.tokenBurst,
                 "Connects allowed at once (keep it below sshd's MaxStartups start, 10)");
  std::vector<std::string> dropTexts, faultTexts;
  app.add_option("--drop", dropTexts,
                 "Shut sessions' sockets: AT[/EVERY][@SESSIONS] in seconds, e.g. 30, 30/60, 30@0-4 (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->default_str("none");
  app.add_option("--fault-cmd", faultTexts,
                 "Run a shell command at a time: 'AT:COMMAND' (iptables, tc, a service restart; repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->default_str("none");
  app.add_option("--html", o.htmlPath, "At the end, write a self-contained HTML report of the run to this file "
                                        "(with the private sshd: sshsoak-report.html beside the log)");
  app.add_option("--shutdown-timeout-secs", o.shutdownTimeoutSecs,
                 "How long agents get to close their sessions at the end before they are killed");
  app.add_option("--agent-path", o.agentPath, "The sshsoak-agent binary (default: beside sshsoak)");
  app.add_flag("--crash-agents-for-testing", o.crashAgentsForTesting,
               "Test only: every agent aborts right after it starts")
      ->group("");
  uint32_t crashSession = 0;
  auto* crashSessionOpt =
      app.add_option("--crash-session-for-testing", crashSession, "Test only: this slot's agent aborts at start")
          ->group("");
  app.add_option("--restart-max", o.restartMax,
                 "A slot whose agent crashes this many times within --restart-window-secs is given up");
  app.add_option("--restart-window-secs", o.restartWindowSecs, "The window of --restart-max");
  app.add_option("--sample-interval-secs", o.sampleIntervalSecs,
                 "Sample CPU, RSS, PSS, fds and threads of the supervisor and every agent this often");
  app.add_option("--warmup-secs", o.warmupSecs,
                 "Samples before this (at most half the run) are left out of steady-state CPU, fd and RSS-growth figures");
  app.add_option("--max-abnormal-ends", o.maxAbnormalEnds, "Verdict: most abnormal session ends allowed");
  app.add_option("--min-reconnect-rate-pct", o.minReconnectRatePct, "Verdict: least reconnect success rate");
  app.add_option("--max-reconnect-p95-ms", o.maxReconnectP95Ms, "Verdict: highest reconnect p95 (detection to usable)");
  app.add_option("--max-memory-mb", o.maxMemoryMb,
                 "Verdict: peak PSS of supervisor + agents must stay below this (MiB)");
  app.add_option("--max-cpu-pct", o.maxCpuPct,
                 "Verdict: mean CPU of supervisor + agents after warm-up must stay below this (% of one core)");
  app.add_option("--pid-file", o.pidFile, "Write the supervisor's PID here at start; removed at exit");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return ParseFailure{0, app.help()};
  } catch (const CLI::ParseError& e) {
    return usage(e.what());
  }
  o.durationGiven = app.count("--duration-secs") > 0;
  passphraseGiven = passOpt->count() > 0;
  o.passphraseOnCommandLine = passphraseGiven;

  // Values.
  if (!targets.empty() || app.count("--targets") > 0) {
    size_t start = 0;
    while (start <= targets.size()) {
      size_t comma = targets.find(',', start);
      if (comma == std::string::npos) comma = targets.size();
      std::string item = targets.substr(start, comma - start);
      if (item.find_first_not_of(" \t") != std::string::npos) {
        auto t = parseTarget(item);
        if (auto* err = std::get_if<std::string>(&t)) return usage("--targets " + *err);
        o.targets.push_back(std::get<Target>(t));
      }
      start = comma + 1;
    }
    if (o.targets.empty()) {
      return usage("--targets is empty: give host:port[,host:port...], or leave the flag out to "
                   "test against a private sshd");
    }
  }
  if (o.durationSecs == 0) return usage("--duration-secs must be at least 1");
  if (o.pollIntervalSecs == 0) return usage("--poll-interval-secs must be at least 1");
  if (o.reconnectTimeoutSecs == 0) return usage("--reconnect-timeout-secs must be at least 1");
  if (o.keepaliveIntervalSecs == 0) return usage("--keepalive-interval-secs must be at least 1");
  if (o.keepaliveCountMax == 0) return usage("--keepalive-count-max must be at least 1");
  if (disconnectOpt->count() > 0) {
    if (disconnectAfter == 0) return usage("--disconnect-after-secs must be at least 1");
    o.disconnectAfterSecs = disconnectAfter;
  }
  if (o.disconnectAfterSecs) o.drops.push_back(DropSpec{*o.disconnectAfterSecs, 0, {}});
  for (const auto& text : dropTexts) {
    auto d = parseDropSpec(text);
    if (auto* err = std::get_if<std::string>(&d)) return usage("--drop " + *err);
    o.drops.push_back(std::get<DropSpec>(d));
  }
  for (const auto& text : faultTexts) {
    auto f = parseFaultCommand(text);
    if (auto* err = std::get_if<std::string>(&f)) return usage("--fault-cmd " + *err);
    o.faultCommands.push_back(std::get<FaultCommand>(f));
  }
  if (o.backoffBaseMs == 0) return usage("--backoff-base-ms must be at least 1");
  if (o.backoffCapMs < o.backoffBaseMs) return usage("--backoff-cap-ms must be at least --backoff-base-ms");
  if (!(o.tokenRatePerSec > 0.0 && o.tokenRatePerSec <= 1e6)) return usage("--token-rate must be above 0");
  if (o.tokenBurst == 0) return usage("--token-burst must be at least 1");
  if (intensity == "low") o.intensity = wire::Intensity::LOW;
  else if (intensity == "medium") o.intensity = wire::Intensity::MEDIUM;
  else if (intensity == "high") o.intensity = wire::Intensity::HIGH;
  else return usage("--intensity '" + intensity + "' is not one of low, medium, high");
  if (hostKeyPolicy == "strict") o.hostKeyPolicy = wire::HostKeyPolicy::STRICT;
  else if (hostKeyPolicy == "accept-new") o.hostKeyPolicy = wire::HostKeyPolicy::ACCEPT_NEW;
  else if (hostKeyPolicy == "off") o.hostKeyPolicy = wire::HostKeyPolicy::OFF;
  else return usage("--host-key-policy '" + hostKeyPolicy + "' is not one of strict, accept-new, off");
  if (!(o.ptyIntervalSecs >= 0.0 && o.ptyIntervalSecs <= 3600.0)) {
    return usage("--pty-interval-secs must be between 0 and 3600");
  }
  if (o.sessions == 0) return usage("--sessions must be at least 1");
  if (o.restartMax == 0) return usage("--restart-max must be at least 1");
  if (o.restartWindowSecs == 0) return usage("--restart-window-secs must be at least 1");
  if (o.sampleIntervalSecs == 0) return usage("--sample-interval-secs must be at least 1");
  if (o.minReconnectRatePct < 0 || o.minReconnectRatePct > 100) {
    return usage("--min-reconnect-rate-pct must be from 0 to 100");
  }
  if (o.maxMemoryMb <= 0) return usage("--max-memory-mb must be more than 0");
  if (o.maxCpuPct <= 0) return usage("--max-cpu-pct must be more than 0");
  if (o.sessions > 1000) return usage("--sessions " + std::to_string(o.sessions) + " is more than 1000");
  if (sessionsOpt->count() > 0 && o.sessions < o.targets.size()) {
    return usage("--sessions " + std::to_string(o.sessions) + " is fewer than the " +
                 std::to_string(o.targets.size()) + " --targets");
  }
  if (sessionsOpt->count() == 0 && o.targets.size() > o.sessions) {
    o.sessions = static_cast<uint32_t>(o.targets.size());
  }
  if (!o.targets.empty()) {
    if (o.user.empty()) return usage("--user is required with --targets");
    if (o.keyPath.empty()) return usage("--key is required with --targets");
  } else if (!o.user.empty() || !o.keyPath.empty()) {
    return usage("--user and --key go with --targets; without --targets sshsoak uses its own "
                 "private sshd and throwaway key");
  }
  int passSources = (passphraseGiven ? 1 : 0) + (passphraseFile.empty() ? 0 : 1) + (passphraseEnv.empty() ? 0 : 1);
  if (passSources > 1) {
    return usage("give the passphrase one way only: --passphrase, --passphrase-file or --passphrase-env");
  }

  // Files: they must be there now, not fail ten agents later.
  std::string why;
  if (!o.keyPath.empty() && !readableFile(o.keyPath, why)) {
    return badInput("--key " + o.keyPath + ": " + why + " (give the path of a readable private key)");
  }
  if (!passphraseFile.empty()) {
    if (!readableFile(passphraseFile, why)) return badInput("--passphrase-file " + passphraseFile + ": " + why);
    std::ifstream in(passphraseFile);
    std::getline(in, o.passphrase);
  }
  if (!passphraseEnv.empty()) {
    auto v = env(passphraseEnv);
    if (!v) return badInput("--passphrase-env " + passphraseEnv + ": no such environment variable");
    o.passphrase = *v;
    o.passphraseEnvName = passphraseEnv;
  }
  bool defaultKnownHosts = o.knownHostsPath.empty();
  if (defaultKnownHosts && !o.targets.empty() && o.hostKeyPolicy != wire::HostKeyPolicy::OFF) {
    const char* home = std::getenv("HOME");
    o.knownHostsPath = std::string(home != nullptr ? home : "") + "/.ssh/known_hosts";
  }
  if (!o.knownHostsPath.empty() && o.hostKeyPolicy != wire::HostKeyPolicy::OFF) {
    if (o.hostKeyPolicy == wire::HostKeyPolicy::STRICT && !readableFile(o.knownHostsPath, why)) {
      return badInput("--known-hosts " + o.knownHostsPath + ": " + why +
                      " (strict needs the hosts' keys there: ssh-keyscan HOST >> FILE)");
    }
    auto dir = std::filesystem::path(o.knownHostsPath).parent_path();
    if (dir.empty()) dir = ".";
    // ~/.ssh is made on first use, as OpenSSH does; a directory the user
    // named must exist.
    if (!defaultKnownHosts && !std::filesystem::is_directory(dir)) {
      return badInput("--known-hosts " + o.knownHostsPath + ": directory " + dir.string() +
                      " does not exist (create it, or name another file)");
    }
  }
  if (!o.htmlPath.empty()) {
    auto dir = std::filesystem::path(o.htmlPath).parent_path();
    if (!dir.empty() && !std::filesystem::is_directory(dir)) {
      return badInput("--html " + o.htmlPath + ": directory " + dir.string() + " does not exist");
    }
  }
  {
    // Opened for append, as the run will: the check is the real thing.
    int fd = ::open(o.logPath.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return badInput("--log-path " + o.logPath + ": " + std::strerror(errno) +
                      " (name a file in a writable directory)");
    }
    ::close(fd);
  }

  for (const auto& d : o.drops) {
    for (auto id : d.sessions) {
      if (id >= o.sessions) {
        return usage("--drop " + d.text() + ": session " + std::to_string(id) + " does not exist (sessions are 0-" +
                     std::to_string(o.sessions - 1) + ")");
      }
    }
  }
  if (crashSessionOpt->count() > 0) {
    if (crashSession >= o.sessions) {
      return usage("--crash-session-for-testing " + std::to_string(crashSession) + " is not below --sessions " +
                   std::to_string(o.sessions));
    }
    o.crashSessionForTesting = crashSession;
  }
  if (!o.pidFile.empty()) {
    auto dir = std::filesystem::path(o.pidFile).parent_path();
    if (dir.empty()) dir = ".";
    if (!std::filesystem::is_directory(dir)) {
      return badInput("--pid-file " + o.pidFile + ": directory " + dir.string() +
                      " does not exist (create it, or name another file)");
    }
  }

  for (uint32_t i = 0; i < o.sessions && !o.targets.empty(); ++i) {
    o.slots.push_back(o.targets[i % o.targets.size()]);
  }
  return o;
}

}  // namespace sshsoak::cli
