// One SSH connection (TCP socket + libssh2 session), non-blocking from the
// first byte. Every wait has a deadline and watches a cancel fd (the command
// pipe), so no step can hang the agent, whatever the network does.
#pragma once

#include <libssh2.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "events.capnp.h"
#include "session_agent/ssh/client_key.h"
#include "session_agent/ssh/error.h"
#include "session_agent/ssh/server_hello.h"
#include "shared/fd.h"
#include "shared/result.h"

namespace sshsoak::agent {

struct ConnectSettings {
  std::string host;
  uint16_t port = 22;
  std::string user;
  std::string keyPath;
  std::string passphrase;
  std::string knownHostsPath;
  wire::HostKeyPolicy hostKeyPolicy = wire::HostKeyPolicy::ACCEPT_NEW;
  // For callers that connect again and again (churn), what the first
  // connection learnt, so that each one costs the client little CPU:
  // key, if set, is the key file read and parsed once (ssh/client_key.h),
  // used instead of reading keyPath at every authentication;
  // trustedHostKey, if not empty, is a raw host key (SshConnection::hostKey)
  // this process already checked against knownHostsPath: a server
  // presenting exactly it is accepted without reading the file (and taking
  // its lock) again; any other key gets the full check.
  std::shared_ptr<const ClientKey> key;
  std::string trustedHostKey;
};

// How far open() got and how long each of its phases took, for callers
// that time every phase (churn). On failure, `reached` is the phase that
// failed.
enum class OpenPhase { TCP, KEX, HOSTKEY, AUTH, DONE };
struct OpenTimings {
  OpenPhase reached = OpenPhase::TCP;
  uint32_t tcpUs = 0;   // resolve + TCP connect
  uint32_t kexUs = 0;   // SSH banner + key exchange + host-key check
  uint32_t authUs = 0;
  // On failure: the server closed or reset the connection (in the TCP and
  // key-exchange phases that is sshd refusing it: MaxStartups, a restart).
  bool peerGone = false;
};

// Work a caller must do on time while a wait of this connection blocks it
// (churn's interval reports): a wait that reaches dueMs calls tick(now),
// which must move dueMs on, then goes on waiting.
struct WaitTicker {
  int64_t dueMs = 0;
  std::function<void(int64_t nowMs)> tick;
};

// How a wait on the socket ended. Kept apart from libssh2's codes: a
// deadline or a command is not something libssh2 said.
enum class Wait {
  READY,      // the socket is ready in a direction libssh2 wanted
  TIMEOUT,    // the deadline passed
  CANCELLED,  // the cancel fd (the command pipe) turned readable
};

// drive()'s outcome: the libssh2 call's own result once it stopped saying
// EAGAIN, or why the waiting stopped first.
struct Driven {
  Wait wait = Wait::READY;
  int rc = 0;  // the call's result; meaningful only when wait == READY
  bool ok() const { return wait == Wait::READY && rc == 0; }
};

class SshConnection {
 public:
  // TCP connect, key exchange, host-key check, public-key auth; all before
  // deadlineMs (CLOCK_MONOTONIC). Gives up early if cancelFd turns readable
  // (then the error is SshError::cancel()). timings, if given, is filled
  // as it goes; ticker, if given, is kept by the connection for every
  // later wait too (it must outlive it).
  static Result<std::unique_ptr<SshConnection>, SshError> open(const ConnectSettings& settings,
                                                               int64_t deadlineMs, int cancelFd,
                                                               OpenTimings* timings = nullptr,
                                                               WaitTicker* ticker = nullptr);

  ~SshConnection();
  SshConnection(const SshConnection&) = delete;
  SshConnection& operator=(const SshConnection&) = delete;

  LIBSSH2_SESSION* session() const { return session_; }
  int fd() const { return socket_.get(); }

  // Polls the socket for the directions libssh2 is blocked on, and cancelFd
  // (if >= 0) for readability.
  Wait waitSocket(int64_t deadlineMs, int cancelFd) const;

  // Repeats a libssh2 call (same arguments) while it says EAGAIN, waiting on
  // the socket in between. Past the deadline it stops (TIMEOUT) whatever the
  // peer keeps sending: waitSocket never reports READY once it has passed.
  // The recv hook reads nothing past the deadline meanwhile, so that a call
  // that libssh2 would keep busy with a stream of packets returns too.
  template <typename Call>
  Driven drive(Call&& call, int64_t deadlineMs, int cancelFd) {
    struct RecvDeadline {
      int64_t& slot;
      int64_t saved;
      ~RecvDeadline() { slot = saved; }
    } guard{recvDeadlineMs_, recvDeadlineMs_};
    recvDeadlineMs_ = std::min(recvDeadlineMs_, deadlineMs);
    for (;;) {
      int rc = call();
      if (rc != LIBSSH2_ERROR_EAGAIN) return Driven{Wait::READY, rc};
      Wait w = waitSocket(deadlineMs, cancelFd);
      if (w != Wait::READY) return Driven{w, 0};
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
  // Is this libssh2 failure (of a channel or a keepalive) the connection
  // itself going away? The cause to report if so.
  std::optional<wire::DisconnectCause> transportFailure(int libssh2Error) const;

  // Negotiated on open.
  std::string kex, hostKeyType, cipher, mac;
  uint32_t handshakeMs = 0;
  uint32_t authMs = 0;
  bool hostKeyAdded = false;
  std::string hostKey;  // the server's raw host key, as checked

  // What the server sent before encryption (its banner, its KEXINIT).
  const ServerHello& hello() const { return hello_; }


 private:
  SshConnection() = default;
  static ssize_t recvHook(libssh2_socket_t sock, void* buffer, size_t length, int flags,
                          void** abstract);
  Status<SshError> checkHostKey(const ConnectSettings& settings);

  UniqueFd socket_;
  LIBSSH2_SESSION* session_ = nullptr;
  bool cut_ = false;
  bool kexInFlight_ = false;  // the handshake was left waiting (deadline, cancel)
  int64_t lastRecvMs_ = 0;
  int lastRecvErrno_ = 0;
  bool peerClosed_ = false;
  int64_t recvDeadlineMs_ = INT64_MAX;  // set by drive() while it runs
  bool recvRefused_ = false;  // the destructor's last handshake call must not read (see ~SshConnection)
  WaitTicker* ticker_ = nullptr;
  ServerHello hello_;  // fed by recvHook until the server's KEXINIT is complete
};

// Our own KEXINIT offer: what libssh2 1.10 offers by default (every method
// it supports, as libssh2_session_supported_algs lists them).
KexOffer ourKexOffer(LIBSSH2_SESSION* session);

// Why a key exchange that failed with libssh2 code rc on this connection
// failed, as the error to report: a flood (protocol), no algorithm in common
// (algorithms, naming the list and both offers), a server that closed right
// after its banner (protocol, with the MaxStartups hint), anything else
// (protocol, libssh2's words). peerGone: the server closed or reset the link.
SshError kexFailure(const ServerHello& hello, const std::optional<KexOffer>& ours, bool peerGone,
                    const std::string& libssh2Message, int rc);

// Once per process, before any session.
void initLibssh2();

// "what: libssh2's last error message" for a failed call on this session.
std::string libssh2Failure(LIBSSH2_SESSION* session, const std::string& what);

}  // namespace sshsoak::agent
