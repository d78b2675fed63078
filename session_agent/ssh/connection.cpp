#include "session_agent/ssh/connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <algorithm>
#include <mutex>

#include "session_agent/event_sink.h"
#include "shared/clock.h"

namespace sshsoak::agent {

namespace {

using Cat = wire::FailureCategory;

// poll(2) until something is ready or deadlineMs passes (then 0), calling
// the ticker whenever it falls due meanwhile. EINTR is retried.
int pollUntil(pollfd* fds, nfds_t count, int64_t deadlineMs, WaitTicker* ticker) {
  for (;;) {
    int64_t now = monoMs();
    if (ticker != nullptr && ticker->dueMs <= now) {
      ticker->tick(now);
      continue;
    }
    int64_t until = ticker != nullptr ? std::min(deadlineMs, ticker->dueMs) : deadlineMs;
    int timeout = waitTimeoutMs(now, until);  // also sends the agent's heartbeat when due
    int n = ::poll(fds, count, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n != 0 || monoMs() >= deadlineMs) return n;
  }
}

// A finished phase is at least 1 µs, so that 0 keeps meaning "not reached".
uint32_t usSince(int64_t startNs) {
  return static_cast<uint32_t>(std::max<int64_t>((monoNs() - startNs + 999) / 1000, 1));
}

// Non-blocking TCP connect to one address, bounded by the deadline.
Result<UniqueFd, SshError> connectTcp(const addrinfo* ai, int64_t deadlineMs, int cancelFd, WaitTicker* ticker) {
  UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       ai->ai_protocol));
  if (!fd) return fail(SshError{Cat::SOCKET, std::string("socket: ") + std::strerror(errno)});
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
    int err = errno;
    return fail(SshError{err == ECONNREFUSED ? Cat::REFUSED : Cat::SOCKET,
                         std::string("connect: ") + std::strerror(err)});
  }
  for (;;) {
    pollfd pfds[2] = {{fd.get(), POLLOUT, 0}, {cancelFd, POLLIN, 0}};
    int n = pollUntil(pfds, cancelFd >= 0 ? 2 : 1, deadlineMs, ticker);
    if (n == 0) return fail(SshError{Cat::TIMEOUT, "TCP connect did not complete before the deadline"});
    if (cancelFd >= 0 && pfds[1].revents != 0) return fail(SshError::cancel());
    if (pfds[0].revents != 0) break;
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    return fail(SshError{err == ECONNREFUSED ? Cat::REFUSED : (err == ETIMEDOUT ? Cat::TIMEOUT : Cat::SOCKET),
                         std::string("connect: ") + std::strerror(err)});
  }
  return fd;
}

int knownHostKeyType(int hostKeyType) {
  switch (hostKeyType) {
    case LIBSSH2_HOSTKEY_TYPE_RSA: return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS: return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256: return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384: return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521: return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519: return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default: return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
  }
}

std::string methodOf(LIBSSH2_SESSION* s, int type) {
  const char* m = libssh2_session_methods(s, type);
  return m != nullptr ? m : "";
}

// known_hosts names a non-standard port as "[host]:port".
std::string knownHostName(const ConnectSettings& s) {
  return s.port == 22 ? s.host : "[" + s.host + "]:" + std::to_string(s.port);
}

// libssh2's words for the last failed call on this session.
std::string lastErrorText(LIBSSH2_SESSION* session, const char* fallback) {
  char* msg = nullptr;
  int len = 0;
  libssh2_session_last_error(session, &msg, &len, 0);
  return msg != nullptr ? std::string(msg, static_cast<size_t>(len)) : fallback;
}

struct KnownHosts {
  LIBSSH2_KNOWNHOSTS* kh;
  explicit KnownHosts(LIBSSH2_SESSION* s) : kh(libssh2_knownhost_init(s)) {}
  ~KnownHosts() {
    if (kh != nullptr) libssh2_knownhost_free(kh);
  }
};

}  // namespace

void initLibssh2() {
  static std::once_flag once;
  std::call_once(once, [] { libssh2_init(0); });
}

ssize_t SshConnection::recvHook(libssh2_socket_t sock, void* buffer, size_t length, int flags,
                                void** abstract) {
  auto* self = static_cast<SshConnection*>(*abstract);
  if (self->recvRefused_) return -ECONNRESET;
  ssize_t n = ::recv(sock, buffer, length, flags);
  if (n > 0) {
    self->lastRecvMs_ = monoMs();
    return n;
  }
  if (n == 0) {
    self->peerClosed_ = true;
    return 0;
  }
  int err = errno;
  if (err != EAGAIN) self->lastRecvErrno_ = err;
  return -err;  // libssh2 expects -errno, as its own _libssh2_recv returns
}

Result<std::unique_ptr<SshConnection>, SshError> SshConnection::open(const ConnectSettings& settings,
                                                                     int64_t deadlineMs, int cancelFd,
                                                                     OpenTimings* timings, WaitTicker* ticker) {
  initLibssh2();
  int64_t startMs = monoMs();
  int64_t phaseNs = monoNs();
  OpenTimings unused;
  OpenTimings& t = timings != nullptr ? *timings : unused;
  t = OpenTimings{};
  std::unique_ptr<SshConnection> conn(new SshConnection());
  conn->ticker_ = ticker;
  // On a failure past TCP: did the server close or reset the link?
  // A send that failed counts too: our banner goes out first, and a server
  // that already closed answers it with a reset.
  auto peerGone = [&](int rc) {
    t.peerGone = conn->peerClosed_ || conn->lastRecvErrno_ == ECONNRESET || rc == LIBSSH2_ERROR_SOCKET_SEND ||
                 rc == LIBSSH2_ERROR_SOCKET_DISCONNECT;
    return t.peerGone;
  };

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(settings.port);
  // TODO(perf): getaddrinfo blocks; a name that takes long to resolve holds
  // this agent (only this one) until the resolver's own timeout.
  int gai = ::getaddrinfo(settings.host.c_str(), port.c_str(), &hints, &res);
  if (gai != 0) {
    return fail(SshError{Cat::RESOLVE, settings.host + ": " + ::gai_strerror(gai)});
  }
  SshError lastTcpError{Cat::SOCKET, "no address"};
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    auto r = connectTcp(ai, deadlineMs, cancelFd, ticker);
    if (r) {
      conn->socket_ = std::move(r).value();
      break;
    }
    lastTcpError = r.error();
    if (lastTcpError.category == Cat::TIMEOUT || lastTcpError.cancelled) break;
  }
  ::freeaddrinfo(res);
  if (!conn->socket_) return fail(lastTcpError);
  t.tcpUs = usSince(phaseNs);
  t.reached = OpenPhase::KEX;
  phaseNs = monoNs();

  conn->session_ = libssh2_session_init_ex(nullptr, nullptr, nullptr, conn.get());
  if (conn->session_ == nullptr) return fail(SshError{Cat::OTHER, "libssh2_session_init failed"});
  libssh2_session_set_blocking(conn->session_, 0);
  // Our recv sees every inbound byte: that is how silence is measured.
  libssh2_session_callback_set(conn->session_, LIBSSH2_CALLBACK_RECV,
                               reinterpret_cast<void*>(&SshConnection::recvHook));

  LIBSSH2_SESSION* s = conn->session_;
  int fd = conn->socket_.get();
  conn->kexInFlight_ = true;
  Driven d = conn->drive([&] { return libssh2_session_handshake(s, fd); }, deadlineMs, cancelFd);
  // Ended by libssh2 itself (done or failed): its exit path has run.
  if (d.wait == Wait::READY) conn->kexInFlight_ = false;
  if (d.wait == Wait::TIMEOUT) return fail(SshError{Cat::TIMEOUT, "SSH key exchange did not finish before the deadline"});
  if (d.wait == Wait::CANCELLED) return fail(SshError::cancel());
  int rc = d.rc;
  if (rc != 0) {
    std::string msg = conn->lastError();
    if (peerGone(rc)) {
      msg += " (the server closed the connection before key exchange: sshd's MaxStartups "
             "refuses new connections when too many are unauthenticated)";
    }
    return fail(SshError{Cat::PROTOCOL, msg, rc});
  }
  conn->handshakeMs = static_cast<uint32_t>(monoMs() - startMs);
  conn->kex = methodOf(s, LIBSSH2_METHOD_KEX);
  conn->hostKeyType = methodOf(s, LIBSSH2_METHOD_HOSTKEY);
  conn->cipher = methodOf(s, LIBSSH2_METHOD_CRYPT_CS);
  conn->mac = methodOf(s, LIBSSH2_METHOD_MAC_CS);

  t.reached = OpenPhase::HOSTKEY;
  if (auto hostKey = conn->checkHostKey(settings); !hostKey) return fail(hostKey.error());
  t.kexUs = usSince(phaseNs);
  t.reached = OpenPhase::AUTH;
  phaseNs = monoNs();

  int64_t authStart = monoMs();
  const char* pass = settings.passphrase.empty() ? nullptr : settings.passphrase.c_str();
  void* signer = const_cast<ClientKey*>(settings.key.get());
  d = conn->drive(
      [&] {
        if (settings.key && settings.key->canSign()) {
          const std::string& blob = settings.key->publicBlob();
          return libssh2_userauth_publickey(s, settings.user.c_str(),
                                            reinterpret_cast<const unsigned char*>(blob.data()), blob.size(),
                                            &ClientKey::signCallback, &signer);
        }
        if (settings.key) {
          const std::string& pub = settings.key->publicKeyLine();
          const std::string& text = settings.key->fileText();
          return libssh2_userauth_publickey_frommemory(s, settings.user.c_str(), settings.user.size(),
                                                       pub.empty() ? nullptr : pub.data(), pub.size(), text.data(),
                                                       text.size(), pass);
        }
        return libssh2_userauth_publickey_fromfile_ex(
            s, settings.user.c_str(), static_cast<unsigned>(settings.user.size()), nullptr,
            settings.keyPath.c_str(), pass);
      },
      deadlineMs, cancelFd);
  if (d.wait == Wait::TIMEOUT) return fail(SshError{Cat::TIMEOUT, "authentication did not finish before the deadline"});
  if (d.wait == Wait::CANCELLED) return fail(SshError::cancel());
  rc = d.rc;
  if (rc != 0) {
    std::string msg = conn->lastError();
    // libssh2 1.10 reports a link lost while it waits for the server's
    // answer as AUTHENTICATION_FAILED ("Waiting for publickey USERAUTH
    // response"): a server that went away has refused nothing.
    if (peerGone(rc)) {
      return fail(SshError{Cat::SOCKET, msg + " (the server closed the connection during authentication)", rc});
    }
    if (rc == LIBSSH2_ERROR_FILE) {
      return fail(SshError{Cat::AUTH,
                           "cannot use key " + settings.keyPath + ": " + msg +
                               " (wrong passphrase, or a key format libssh2 cannot read)",
                           rc});
    }
    if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED) {
      msg = "the server refused key " + settings.keyPath + " for user " + settings.user + ": " + msg +
            ". If it is an RSA key: libssh2 1.10 signs with SHA-1 only, which OpenSSH >= 8.8 "
            "refuses; use an ed25519 key";
      return fail(SshError{Cat::AUTH, msg, rc});
    }
    return fail(SshError{Cat::PROTOCOL, msg, rc});
  }
  conn->authMs = static_cast<uint32_t>(monoMs() - authStart);
  t.authUs = usSince(phaseNs);
  t.reached = OpenPhase::DONE;
  return conn;
}

Status<SshError> SshConnection::checkHostKey(const ConnectSettings& settings) {
  using Policy = wire::HostKeyPolicy;
  if (settings.hostKeyPolicy == Policy::OFF) return Ok{};
  size_t keyLen = 0;
  int keyType = 0;
  const char* key = libssh2_session_hostkey(session_, &keyLen, &keyType);
  if (key == nullptr) return fail(SshError{Cat::HOSTKEY, "the server sent no host key"});
  hostKey.assign(key, keyLen);
  if (!settings.trustedHostKey.empty() && settings.trustedHostKey == hostKey) return Ok{};

  // accept-new appends to a file that every agent of the run shares: one
  // writer at a time, and a re-read under the lock so that ten agents meeting
  // the same new host add it once.
  UniqueFd lockFd;
  if (settings.hostKeyPolicy == Policy::ACCEPT_NEW) {
    lockFd.reset(::open(settings.knownHostsPath.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!lockFd) {
      return fail(SshError{Cat::HOSTKEY, "cannot open --known-hosts " + settings.knownHostsPath + ": " +
                                            std::strerror(errno)});
    }
    while (::flock(lockFd.get(), LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  KnownHosts known(session_);
  if (known.kh == nullptr) return fail(SshError{Cat::OTHER, "libssh2_knownhost_init failed"});
  // A missing file is simply empty.
  libssh2_knownhost_readfile(known.kh, settings.knownHostsPath.c_str(), LIBSSH2_KNOWNHOST_FILE_OPENSSH);
  libssh2_knownhost* found = nullptr;
  int check = libssh2_knownhost_checkp(known.kh, settings.host.c_str(), settings.port, key, keyLen,
                                       LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW,
                                       &found);
  std::string where = knownHostName(settings) + " (" + hostKeyType + ") in " + settings.knownHostsPath;
  switch (check) {
    case LIBSSH2_KNOWNHOST_CHECK_MATCH:
      return Ok{};
    case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
      return fail(SshError{Cat::HOSTKEY, "HOST KEY CHANGED for " + where +
                                            ": refusing to connect (possible man-in-the-middle)"});
    case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
      if (settings.hostKeyPolicy == Policy::STRICT) {
        return fail(SshError{Cat::HOSTKEY, "unknown host key for " + where +
                                              " and --host-key-policy is strict; add it with "
                                              "ssh-keyscan, or use accept-new"});
      }
      break;
    default:
      return fail(SshError{Cat::HOSTKEY, "cannot check the host key of " + where});
  }
  libssh2_knownhost* added = nullptr;
  std::string name = knownHostName(settings);
  if (libssh2_knownhost_addc(known.kh, name.c_str(), nullptr, key, keyLen, nullptr, 0,
                             LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                 knownHostKeyType(keyType),
                             &added) != 0) {
    return fail(SshError{Cat::HOSTKEY, "cannot record the host key of " + where});
  }
  char line[8192];
  size_t lineLen = 0;
  if (libssh2_knownhost_writeline(known.kh, added, line, sizeof line, &lineLen,
                                  LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0 ||
      !writeAll(lockFd.get(), line, lineLen)) {
    return fail(SshError{Cat::HOSTKEY, "cannot append the host key to " + settings.knownHostsPath});
  }
  hostKeyAdded = true;
  return Ok{};
}

void SshConnection::setLiveness(uint32_t intervalMs, uint32_t countMax) {
  int fd = socket_.get();
  int one = 1;
  int idle = static_cast<int>(std::max<uint32_t>(intervalMs / 1000, 1));
  int count = static_cast<int>(countMax);
  unsigned userTimeout = intervalMs * countMax;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &userTimeout, sizeof userTimeout);
  // Started only now, after authentication (libssh2#1810). The interval
  // given here is libssh2's own minimum spacing; the agent decides when a
  // keepalive is due (only after a silent interval, as OpenSSH does).
  libssh2_keepalive_config(session_, 1, 1);
  lastRecvMs_ = monoMs();
}

int SshConnection::sendKeepalive() {
  int next = 0;
  return libssh2_keepalive_send(session_, &next);
}

Wait SshConnection::waitSocket(int64_t deadlineMs, int cancelFd) const {
  int dirs = libssh2_session_block_directions(session_);
  short events = 0;
  if (dirs & LIBSSH2_SESSION_BLOCK_INBOUND) events |= POLLIN;
  if (dirs & LIBSSH2_SESSION_BLOCK_OUTBOUND) events |= POLLOUT;
  if (events == 0) events = POLLIN;
  pollfd pfds[2] = {{socket_.get(), events, 0}, {cancelFd, POLLIN, 0}};
  int n = pollUntil(pfds, cancelFd >= 0 ? 2 : 1, deadlineMs, ticker_);
  if (n == 0) return Wait::TIMEOUT;
  if (cancelFd >= 0 && pfds[1].revents != 0) return Wait::CANCELLED;
  return Wait::READY;
}

void SshConnection::closeGracefully(int64_t deadlineMs) {
  if (session_ == nullptr || cut_) return;
  drive([&] { return libssh2_session_disconnect(session_, "sshsoak: session closed"); }, deadlineMs, -1);
}

void SshConnection::cut() {
  if (socket_ && !cut_) ::shutdown(socket_.get(), SHUT_RDWR);
  cut_ = true;
}

std::optional<wire::DisconnectCause> SshConnection::transportFailure(int rc) const {
  if (peerClosed_) return wire::DisconnectCause::END_OF_FILE;
  if (lastRecvErrno_ == ECONNRESET) return wire::DisconnectCause::RESET;
  switch (rc) {
    case LIBSSH2_ERROR_SOCKET_SEND:
    case LIBSSH2_ERROR_SOCKET_RECV:
    case LIBSSH2_ERROR_SOCKET_DISCONNECT:
    case LIBSSH2_ERROR_SOCKET_TIMEOUT:
      return wire::DisconnectCause::SOCKET_ERROR;
    case LIBSSH2_ERROR_DECRYPT:
    case LIBSSH2_ERROR_KEX_FAILURE:
    case LIBSSH2_ERROR_INVALID_MAC:
    case LIBSSH2_ERROR_PROTO:
      return wire::DisconnectCause::PROTOCOL;
    default:
      return std::nullopt;
  }
}

std::string SshConnection::lastError() const { return lastErrorText(session_, "unknown libssh2 error"); }

std::string libssh2Failure(LIBSSH2_SESSION* session, const std::string& what) {
  return what + ": " + lastErrorText(session, "error");
}

SshConnection::~SshConnection() {
  if (session_ != nullptr) {
    // Freeing may want to send channel closes. With the socket shut down any
    // send fails at once, so the bounded loop below cannot spin on EAGAIN.
    cut();
    // libssh2 1.10 frees a key exchange's curve25519 key pair only on the
    // exchange's own exit path, never in libssh2_session_free (libssh2#660):
    // a session given up mid-kex (deadline, shutdown) leaked 64 bytes. One
    // more call on the cut socket fails at once and takes that path. It must
    // not read on: a reply already in the socket's buffer (shutdown does not
    // discard it) would be parsed, and that path leaks the server's host key
    // (~1.2 KB, seen under LeakSanitizer in churn). So recv fails first.
    recvRefused_ = true;
    for (int i = 0; kexInFlight_ && i < 10 && libssh2_session_handshake(session_, socket_.get()) == LIBSSH2_ERROR_EAGAIN;
         ++i) {
    }
    for (int i = 0; i < 100 && libssh2_session_free(session_) == LIBSSH2_ERROR_EAGAIN; ++i) {
    }
  }
}

}  // namespace sshsoak::agent
