// One SSH connection (TCP socket + libssh2 session), non-blocking from the
// first byte. Every wait has a deadline and watches a cancel fd (the command
// pipe), so no step can hang the agent, whatever the network does.
#pragma once

#include <libssh2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <variant>

#include "events.capnp.h"
#include "shared/fd.h"

namespace sshsoak::agent {

struct ConnectSettings {
  std::string host;
  uint16_t port = 22;
  std::string user;
  std::string keyPath;
  std::string passphrase;
  std::string knownHostsPath;
  wire::HostKeyPolicy hostKeyPolicy = wire::HostKeyPolicy::ACCEPT_NEW;
};

struct ConnectError {
  wire::FailureCategory category;
  std::string message;
  int libssh2Error = 0;
};

// Results of drive() and waitSocket() beyond libssh2's own codes.
constexpr int DRIVE_TIMEOUT = LIBSSH2_ERROR_TIMEOUT;
constexpr int DRIVE_CANCELLED = -1000;

class SshConnection {
 public:
  using OpenResult = std::variant<std::unique_ptr<SshConnection>, ConnectError>;
  // TCP connect, key exchange, host-key check, public-key auth; all before
  // deadlineMs (CLOCK_MONOTONIC). Gives up early if cancelFd turns readable.
  static OpenResult open(const ConnectSettings& settings, int64_t deadlineMs, int cancelFd);

  ~SshConnection();
  SshConnection(const SshConnection&) = delete;
  SshConnection& operator=(const SshConnection&) = delete;

  LIBSSH2_SESSION* session() const { return session_; }
  int fd() const { return socket_.get(); }

  // Polls the socket for the directions libssh2 is blocked on, and cancelFd
  // for readability. 1: socket ready, 0: deadline, DRIVE_CANCELLED.
  int waitSocket(int64_t deadlineMs, int cancelFd) const;

  // Repeats a libssh2 call (same arguments) while it says EAGAIN, waiting on
  // the socket in between. Returns its result, DRIVE_TIMEOUT or
  // DRIVE_CANCELLED.
  template <typename Call>
  int drive(Call&& call, int64_t deadlineMs, int cancelFd) {
    for (;;) {
      int rc = call();
      if (rc != LIBSSH2_ERROR_EAGAIN) return rc;
      int w = waitSocket(deadlineMs, cancelFd);
      if (w == 0) return DRIVE_TIMEOUT;
      if (w == DRIVE_CANCELLED) return DRIVE_CANCELLED;
    }
  }

  // Sends SSH_MSG_DISCONNECT if it can before the deadline; then the
  // destructor frees everything.
  void closeGracefully(int64_t deadlineMs);
  // Cuts the link at once: shutdown(2) on the socket, so every later
  // libssh2 call fails fast instead of waiting. Used on a dead or timed-out
  // link and for injected drops.
  void cut();
  bool isCut() const { return cut_; }

  // After authentication: kernel-level help for dead-peer detection.
  // TCP_USER_TIMEOUT errors the socket when sent data stays unacknowledged
  // for interval x count-max; SO_KEEPALIVE probes an idle link likewise.
  void setLiveness(uint32_t intervalMs, uint32_t countMax);
  // Sends an OpenSSH-style keepalive (a global request with want-reply);
  // any answer, even a refusal, counts as "received".
  int sendKeepalive();

  std::string lastError() const;
  int64_t lastRecvMs() const { return lastRecvMs_; }
  int lastRecvErrno() const { return lastRecvErrno_; }
  bool peerClosed() const { return peerClosed_; }

  // Negotiated on open.
  std::string kex, hostKeyType, cipher, mac;
  uint32_t handshakeMs = 0;
  uint32_t authMs = 0;
  bool hostKeyAdded = false;

 private:
  SshConnection() = default;
  static ssize_t recvHook(libssh2_socket_t sock, void* buffer, size_t length, int flags,
                          void** abstract);
  std::variant<std::monostate, ConnectError> checkHostKey(const ConnectSettings& settings);

  UniqueFd socket_;
  LIBSSH2_SESSION* session_ = nullptr;
  bool cut_ = false;
  int64_t lastRecvMs_ = 0;
  int lastRecvErrno_ = 0;
  bool peerClosed_ = false;
};

// Once per process, before any session.
void initLibssh2();

// "what: libssh2's last error message" for a failed call on this session.
std::string libssh2Failure(LIBSSH2_SESSION* session, const std::string& what);

}  // namespace sshsoak::agent
