#include "session_agent/ssh/connection.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <utility>

#include "session_agent/event_sink.h"
#include "shared/clock.h"

namespace sshsoak::agent {

namespace {

using Cat = wire::FailureCategory;

// poll(2) until something is ready or deadlineMs passes (then 0), calling
// the ticker whenever it falls due meanwhile. EINTR is retried. Once the
// deadline has passed it returns 0 without polling, whatever is ready: a
// peer that keeps the socket readable (a byte at a time, a flood) must not
// keep a caller's loop going past its deadline.
int pollUntil(pollfd* fds, nfds_t count, int64_t deadlineMs, WaitTicker* ticker) {
  for (;;) {
    int64_t now = monoMs();
    if (ticker != nullptr && ticker->dueMs <= now) {
      ticker->tick(now);
      continue;
    }
    if (now >= deadlineMs) {
      for (nfds_t i = 0; i < count; ++i) fds[i].revents = 0;
      return 0;
    }
    int64_t until = ticker != nullptr ? std::min(deadlineMs, ticker->dueMs) : deadlineMs;
    int timeout = waitTimeoutMs(now, until);  // also sends the agent's heartbeat when due
    int n = ::poll(fds, count, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n != 0) return n;
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
                         std::string("connect: ") + std::strerror(err)}
                    .signal(err == ECONNREFUSED || err == ECONNRESET ? ConnectSignal::RESET_BEFORE_BANNER
                                                                     : ConnectSignal::NONE));
  }
  for (;;) {
    pollfd pfds[2] = {{fd.get(), POLLOUT, 0}, {cancelFd, POLLIN, 0}};
    int n = pollUntil(pfds, cancelFd >= 0 ? 2 : 1, deadlineMs, ticker);
    if (n == 0) {
      return fail(SshError{Cat::TIMEOUT, "TCP connect did not complete before the deadline"}.signal(ConnectSignal::TIMEOUT));
    }
    if (cancelFd >= 0 && pfds[1].revents != 0) return fail(SshError::cancel());
    if (pfds[0].revents != 0) break;
  }
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    return fail(SshError{err == ECONNREFUSED ? Cat::REFUSED : (err == ETIMEDOUT ? Cat::TIMEOUT : Cat::SOCKET),
                         std::string("connect: ") + std::strerror(err)}
                    .signal(err == ECONNREFUSED || err == ECONNRESET ? ConnectSignal::RESET_BEFORE_BANNER
                            : err == ETIMEDOUT                       ? ConnectSignal::TIMEOUT
                                                                     : ConnectSignal::NONE));
  }
  return fd;
}

// One asynchronous getaddrinfo (glibc's getaddrinfo_a): glibc resolves in
// its own thread and, when done, calls lookupDone in another, which writes a
// byte to `done`. The caller polls that pipe with its deadline and the
// command pipe. A caller that gives up (deadline, command) cancels what glibc
// has not started; a lookup already running cannot be stopped, so the record
// is shared: whichever of the caller and lookupDone lets go last frees it.
// An abandoned lookup thus lives only until the resolver's own timeout.
struct Lookup {
  gaicb cb{};
  addrinfo hints{};
  std::string host, port;
  UniqueFd doneRead, doneWrite;
  std::atomic<int> refs{2};
};

void release(Lookup* l) {
  if (l->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (l->cb.ar_result != nullptr) ::freeaddrinfo(l->cb.ar_result);
    delete l;
  }
}

void lookupDone(sigval v) {
  auto* l = static_cast<Lookup*>(v.sival_ptr);
  char byte = 1;
  [[maybe_unused]] ssize_t w = ::write(l->doneWrite.get(), &byte, 1);
  release(l);
}

struct AddrList {
  addrinfo* head = nullptr;
  AddrList() = default;
  AddrList(const AddrList&) = delete;
  AddrList& operator=(const AddrList&) = delete;
  AddrList(AddrList&& o) noexcept : head(std::exchange(o.head, nullptr)) {}
  ~AddrList() {
    if (head != nullptr) ::freeaddrinfo(head);
  }
};

// Resolves host:port before deadlineMs; the command pipe cancels it.
Result<AddrList, SshError> resolve(const std::string& host, uint16_t port, int64_t deadlineMs, int cancelFd,
                                   WaitTicker* ticker) {
  int64_t startMs = monoMs();
  // An address needs no resolver: parsed here, it never blocks, and a churn
  // of hundreds of connections a second does not pay for glibc's threads.
  {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    AddrList numeric;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &numeric.head) == 0) return numeric;
    numeric.head = nullptr;  // not an address: left unset by a failed call
  }
  auto* l = new Lookup();
  l->host = host;
  l->port = std::to_string(port);
  l->hints.ai_family = AF_UNSPEC;
  l->hints.ai_socktype = SOCK_STREAM;
  l->cb.ar_name = l->host.c_str();
  l->cb.ar_service = l->port.c_str();
  l->cb.ar_request = &l->hints;
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC | O_NONBLOCK) != 0) {
    int err = errno;
    delete l;
    return fail(SshError{Cat::RESOLVE, host + ": cannot resolve: pipe: " + std::strerror(err)});
  }
  l->doneRead.reset(pipeFds[0]);
  l->doneWrite.reset(pipeFds[1]);
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD;
  sev.sigev_notify_function = &lookupDone;
  sev.sigev_value.sival_ptr = l;
  gaicb* list[1] = {&l->cb};
  if (int rc = ::getaddrinfo_a(GAI_NOWAIT, list, 1, &sev); rc != 0) {
    delete l;  // nothing was queued: lookupDone will not run
    return fail(SshError{Cat::RESOLVE, host + ": cannot start resolving: " + ::gai_strerror(rc)});
  }
  for (;;) {
    pollfd pfds[2] = {{l->doneRead.get(), POLLIN, 0}, {cancelFd, POLLIN, 0}};
    int n = pollUntil(pfds, cancelFd >= 0 ? 2 : 1, deadlineMs, ticker);
    if (n > 0 && pfds[0].revents != 0) break;
    bool cancelled = n > 0 && cancelFd >= 0 && pfds[1].revents != 0;
    if (n == 0 || cancelled) {
      // Not started yet: glibc drops it and lookupDone never runs.
      if (::gai_cancel(&l->cb) == EAI_CANCELED) release(l);
      release(l);
      if (cancelled) return fail(SshError::cancel());
      return fail(SshError{Cat::TIMEOUT, "resolving " + host + " took too long: no answer from the resolver in " +
                                             std::to_string(monoMs() - startMs) +
                                             " ms, before the connect deadline (check /etc/resolv.conf's "
                                             "name servers, or give an address)"});
    }
  }
  AddrList out;
  int gai = ::gai_error(&l->cb);
  if (gai == 0) out.head = std::exchange(l->cb.ar_result, nullptr);
  release(l);
  if (gai != 0) return fail(SshError{Cat::RESOLVE, host + ": " + ::gai_strerror(gai)});
  return out;
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
  // A server flooding us before its KEXINIT is cut off here, before libssh2
  // (which reads the banner a byte at a time) spends more on it.
  if (self->hello_.flooded()) return -EMSGSIZE;
  // Past the deadline of the drive() in progress, nothing more is read:
  // libssh2 loops inside one call for as long as whole packets keep coming
  // (a stream of IGNOREs), so only "no data" makes it return to drive().
  if (monoMs() >= self->recvDeadlineMs_) return -EAGAIN;
  ssize_t n = ::recv(sock, buffer, length, flags);
  if (n > 0) {
    self->lastRecvMs_ = monoMs();
    if (!self->hello_.kexinitComplete()) self->hello_.feed(static_cast<const uint8_t*>(buffer), static_cast<size_t>(n));
    // Every byte libssh2 reads passes here, also inside loops that never
    // wait while data keeps coming (a stream of IGNOREs in one handshake
    // call, an exec whose output never pauses): the heartbeat goes out from
    // them too, or the watchdog would kill a busy agent as a silent one.
    heartbeatDue(self->lastRecvMs_);
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

  // Resolution is part of the connect step: same deadline, same cancel.
  auto addrs = resolve(settings.host, settings.port, deadlineMs, cancelFd, ticker);
  if (!addrs) return fail(addrs.error());
  SshError lastTcpError{Cat::SOCKET, "no address"};
  for (addrinfo* ai = addrs.value().head; ai != nullptr; ai = ai->ai_next) {
    auto r = connectTcp(ai, deadlineMs, cancelFd, ticker);
    if (r) {
      conn->socket_ = std::move(r).value();
      break;
    }
    lastTcpError = r.error();
    if (lastTcpError.category == Cat::TIMEOUT || lastTcpError.cancelled) break;
  }
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
  const ServerHello& hello = conn->hello_;
  if (d.wait == Wait::TIMEOUT) {
    if (!hello.bannerSeen()) {
      return fail(SshError{Cat::TIMEOUT, "SSH banner: the server's banner did not arrive before the deadline (" +
                                             std::to_string(hello.preBannerBytes()) + " bytes received, no SSH- line)"}
                      .signal(ConnectSignal::TIMEOUT));
    }
    if (!hello.kexinitComplete()) {
      return fail(SshError{Cat::TIMEOUT, "key exchange: the server's KEXINIT did not arrive before the deadline "
                                         "(banner \"" + hello.banner() + "\", " +
                                             std::to_string(hello.bytesAfterBanner()) + " bytes after it)"}
                      .signal(ConnectSignal::TIMEOUT));
    }
    return fail(SshError{Cat::TIMEOUT, "key exchange did not finish before the deadline (banner \"" +
                                           hello.banner() + "\")"}
                    .signal(ConnectSignal::TIMEOUT));
  }
  if (d.wait == Wait::CANCELLED) return fail(SshError::cancel());
  int rc = d.rc;
  if (rc != 0) {
    std::optional<KexOffer> ours;
    if (hello.offer()) ours = ourKexOffer(s);
    return fail(kexFailure(hello, ours, peerGone(rc), conn->lastError(), rc));
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
  if (d.wait == Wait::TIMEOUT) {
    return fail(SshError{Cat::TIMEOUT, "authentication: the server did not answer before the deadline"}
                    .signal(ConnectSignal::TIMEOUT));
  }
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

KexOffer ourKexOffer(LIBSSH2_SESSION* session) {
  auto list = [&](int type) {
    std::vector<std::string> out;
    const char** algs = nullptr;
    int n = libssh2_session_supported_algs(session, type, &algs);
    for (int i = 0; i < n; ++i) out.emplace_back(algs[i]);
    if (algs != nullptr && n > 0) libssh2_free(session, static_cast<void*>(algs));
    return out;
  };
  return KexOffer{list(LIBSSH2_METHOD_KEX),     list(LIBSSH2_METHOD_HOSTKEY), list(LIBSSH2_METHOD_CRYPT_CS),
                  list(LIBSSH2_METHOD_CRYPT_SC), list(LIBSSH2_METHOD_MAC_CS),  list(LIBSSH2_METHOD_MAC_SC)};
}

SshError kexFailure(const ServerHello& hello, const std::optional<KexOffer>& ours, bool peerGone,
                    const std::string& libssh2Message, int rc) {
  if (hello.flooded()) {
    if (!hello.bannerSeen()) {
      return SshError{Cat::PROTOCOL,
                      "SSH banner: the server sent " + std::to_string(hello.preBannerBytes()) +
                          " bytes without an SSH banner (more than any SSH server sends first): not an SSH server?",
                      rc};
    }
    return SshError{Cat::PROTOCOL,
                    "key exchange: the server sent " + std::to_string(hello.bytesAfterBanner()) +
                        " bytes after its banner (\"" + hello.banner() +
                        "\") without a valid KEXINIT (a packet over " + std::to_string(ServerHello::MAX_KEXINIT) +
                        " bytes, or more than " + std::to_string(ServerHello::MAX_BEFORE_KEXINIT) +
                        " bytes of other packets)",
                    rc};
  }
  if (hello.offer() && ours) {
    if (auto mismatch = describeMismatch(*ours, *hello.offer())) {
      return SshError{Cat::ALGORITHMS, "key exchange with " + hello.banner() + ": " + *mismatch, rc};
    }
  }
  if (peerGone && hello.bytesAfterBanner() == 0) {
    // sshd's MaxStartups (and OpenSSH's PerSourcePenalties) drop a new
    // connection at once: closed before or right after the banner, no KEXINIT.
    std::string when = hello.bannerSeen() ? "right after its banner, before its key-exchange offer"
                                          : "before sending its SSH banner";
    if (!hello.lastLine().empty()) when += ", saying \"" + hello.lastLine() + "\"";
    // sshd >= 8.x says "Exceeded MaxStartups" before it closes; older ones
    // close right after the banner. Nothing at all is a plain early close.
    const bool maxStartups = hello.bannerSeen() || hello.lastLine().find("MaxStartups") != std::string::npos;
    return SshError{Cat::PROTOCOL,
                    libssh2Message + " (the server closed the connection " + when +
                        ": sshd's MaxStartups refuses new connections when too many are unauthenticated)",
                    rc}
        .signal(maxStartups ? ConnectSignal::MAX_STARTUPS : ConnectSignal::RESET_BEFORE_BANNER);
  }
  std::string step = hello.bannerSeen() ? "key exchange: " : "SSH banner: ";
  if (peerGone) {
    return SshError{Cat::PROTOCOL, step + libssh2Message + " (the server closed the connection)", rc}.signal(
        hello.bannerSeen() ? ConnectSignal::NONE : ConnectSignal::RESET_BEFORE_BANNER);
  }
  return SshError{Cat::PROTOCOL, step + libssh2Message, rc};
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
