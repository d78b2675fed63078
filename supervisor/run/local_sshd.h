// A private OpenSSH sshd on loopback with throwaway keys: the embedded
// default target of `sshsoak` and the integration-test fixture. It is the
// real server, never a stand-in.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "shared/fd.h"

namespace sshsoak {

struct LocalSshdOptions {
  std::string listenAddress = "127.0.0.1";
  uint16_t port = 0;           // 0: pick a free port
  std::string extraConfig;     // more sshd_config lines (MaxStartups, ...)
  bool dieWithParent = true;   // the sshd dies if we do
};

// sshd_config lines the embedded default adds for --workload churn.
// OpenSSH's default MaxStartups, 10:30:100, starts dropping new connections
// at random once 10 are unauthenticated, which a churn above ~100/s on a
// loaded machine reaches: the embedded server would measure its own limit
// instead of the client. A server of yours keeps its own settings.
inline constexpr const char* CHURN_SSHD_CONFIG = "MaxStartups 200:30:400";

class LocalSshd {
 public:
  // Creates a temp dir with host and client ed25519 keys, authorized_keys
  // and an sshd_config, then starts sshd and waits until it answers. The
  // dir, /tmp/sshsoak-sshd-PID-XXXXXX, is 0700 (its files 0600) and holds
  // a file "lock" that this object keeps flock()ed: the kernel drops the
  // lock when the process dies, however it dies, so removeStale() can tell a
  // SIGKILLed run's dir from a live one's.
  // Throws std::runtime_error with sshd's own words when it cannot start.
  explicit LocalSshd(LocalSshdOptions options = {});
  ~LocalSshd();
  LocalSshd(const LocalSshd&) = delete;
  LocalSshd& operator=(const LocalSshd&) = delete;

  void start();  // again, on the same port (sshd restart: docs/runbook.md, F3)
  void stop();   // SIGTERM its process group by PID, then SIGKILL
  bool running() const { return pid_ > 0; }

  uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& address() const { return options_.listenAddress; }
  std::string target() const;  // "127.0.0.1:PORT"
  const std::string& dir() const { return dir_; }
  const std::string& user() const { return user_; }
  std::string clientKeyPath() const { return dir_ + "/client_ed25519"; }
  std::string knownHostsPath() const { return dir_ + "/known_hosts"; }
  std::string authorizedKeysPath() const { return dir_ + "/authorized_keys"; }
  std::string logPath() const { return dir_ + "/sshd.log"; }
  std::string log() const;  // sshd's log so far

  // Removes the dirs of LocalSshds whose process is gone (SIGKILLed: no
  // destructor ran): those whose lock nobody holds, and those without a lock
  // file whose PID is dead (killed while making it). A live one's dir is
  // never touched. Returns the dirs removed.
  static std::vector<std::string> removeStale(const std::string& parent = "/tmp");

  // Makes a second client key that is NOT authorized; returns its path.
  std::string makeUnauthorizedKey();
  // The client key is no longer accepted from now on (an authentication
  // failure: docs/runbook.md, F4).
  void revokeClientKey();

 private:
  void writeConfig();
  bool waitUntilReady(int timeoutMs);

  LocalSshdOptions options_;
  std::string dir_;
  UniqueFd lock_;  // dir_/lock, flock()ed while we live (close-on-exec: sshd does not hold it)
  std::string user_;
  uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// Runs a program to completion; returns its exit code, its output in *out.
int runProgram(const std::string& exe, const std::vector<std::string>& args,
               std::string* out = nullptr);

}  // namespace sshsoak
