#include "proxy/relay.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "shared/clock.h"

namespace sshsoak::proxy {

namespace {

constexpr uint64_t TAG_LISTENER = 0, TAG_CLIENT = 1, TAG_SERVER = 2, TAG_STOP = 3;
constexpr size_t READ_BYTES = 64 * 1024;
constexpr size_t BULK_READ_BYTES = 16 * 1024;
constexpr int64_t NEVER = std::numeric_limits<int64_t>::max();
// How long a listener that could not accept (out of fds) is left alone.
constexpr int64_t LISTENER_PAUSE_NS = 100'000'000;

uint64_t tagged(uint64_t id, uint64_t tag) { return (id << 2) | tag; }

void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Errors that pass: the process or the system is out of fds or memory.
bool outOfResources(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

// SO_LINGER 0: close() then sends RST, not FIN.
void setResetOnClose(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace

Relay::Relay(RelayConfig config, std::function<void(const WindowReport&)> report)
    : config_(std::move(config)),
      report_(std::move(report)),
      epoll_(sysCall("epoll_create1", [] { return ::epoll_create1(EPOLL_CLOEXEC); })),
      faults_(config_.faults.size()),
      rng_(config_.seed),
      scratch_(READ_BYTES) {
  for (size_t i = 0; i < config_.sessions.size(); ++i) {
    UniqueFd l(sysCall("socket", [] { return ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0); }));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    sysCall("bind 127.0.0.1:0", [&] { return ::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a); });
    sysCall("listen", [&] { return ::listen(l.get(), SOMAXCONN); });
    socklen_t len = sizeof a;
    sysCall("getsockname", [&] { return ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len); });
    ports_.push_back(ntohs(a.sin_port));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tagged(i, TAG_LISTENER);
    sysCall("epoll_ctl add listener", [&] { return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, l.get(), &ev); });
    listeners_.push_back(std::move(l));
  }
}

Relay::~Relay() = default;

std::vector<uint16_t> Relay::ports() const { return ports_; }

void Relay::addStopFd(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tagged(0, TAG_STOP);
  sysCall("epoll_ctl add stop fd", [&] { return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev); });
}

bool Relay::faultApplies(size_t f, uint32_t session) const {
  return faults_[f].active && config_.faults[f].appliesTo(session);
}

// ---- The schedule.

void Relay::advanceSchedule(int64_t nowNs) {
  int64_t t = nowMs(nowNs);
  for (size_t f = 0; f < faults_.size(); ++f) {
    FaultState& st = faults_[f];
    const FaultWhen& when = config_.faults[f].when;
    if (st.active && st.occurrence.endMs && t >= *st.occurrence.endMs) endWindow(f, nowNs);
    uint32_t n = faultStartedBy(when, t);
    if (n > st.lastStarted) {
      if (st.active) endWindow(f, nowNs);
      st.lastStarted = n;
      // Only the latest: an occurrence missed while the loop was stopped is
      // not replayed.
      FaultOccurrence o = faultOccurrence(when, n);
      bool point = o.endMs && *o.endMs == o.startMs;
      if (!o.endMs || t < *o.endMs || point) {
        startWindow(f, o, nowNs);
        if (point) endWindow(f, nowNs);
      }
    }
  }
}

int64_t Relay::nextScheduleNs() const {
  int64_t next = NEVER;
  for (size_t f = 0; f < faults_.size(); ++f) {
    const FaultState& st = faults_[f];
    const FaultWhen& when = config_.faults[f].when;
    if (st.active && st.occurrence.endMs) {
      next = std::min(next, config_.startMonoNs + *st.occurrence.endMs * 1'000'000);
    }
    if (st.lastStarted == 0 || when.everyMs > 0) {
      FaultOccurrence o = faultOccurrence(when, st.lastStarted + 1);
      next = std::min(next, config_.startMonoNs + o.startMs * 1'000'000);
    }
  }
  return next;
}

void Relay::startWindow(size_t f, const FaultOccurrence& o, int64_t nowNs) {
  FaultState& st = faults_[f];
  const FaultSpec& spec = config_.faults[f];
  st.active = true;
  st.occurrence = o;
  st.startNs = nowNs;
  st.bytesHeld = 0;
  st.resets = 0;
  st.connections = 0;
  std::vector<uint64_t> toReset;
  for (auto& [id, c] : conns_) {
    if (!spec.appliesTo(c->session)) continue;
    ++st.connections;
    if (spec.kind == FaultKind::RESET) toReset.push_back(id);
    c->wakeNs = nowNs;  // its effects changed
  }
  report_(WindowReport{true, static_cast<uint32_t>(f), o.number, wallNs(), st.connections, 0, 0, 0});
  for (uint64_t id : toReset) {
    closeConn(id, true);
    ++st.resets;
  }
}

void Relay::endWindow(size_t f, int64_t nowNs) {
  FaultState& st = faults_[f];
  st.active = false;
  for (auto& [id, c] : conns_) {
    if (config_.faults[f].appliesTo(c->session)) c->wakeNs = nowNs;  // held bytes go on now
  }
  WindowReport r;
  r.started = false;
  r.faultId = static_cast<uint32_t>(f);
  r.occurrence = st.occurrence.number;
  r.wallNs = wallNs();
  r.connections = st.connections;
  r.durationMs = (nowNs - st.startNs) / 1'000'000;
  r.bytesHeld = st.bytesHeld;
  r.resets = st.resets;
  report_(r);
}

Relay::Effects Relay::effectsFor(const Conn& c, int64_t nowNs) const {
  Effects e;
  (void)nowNs;
  for (size_t f = 0; f < faults_.size(); ++f) {
    if (!faultApplies(f, c.session)) continue;
    const FaultSpec& s = config_.faults[f];
    switch (s.kind) {
      case FaultKind::LATENCY:
        if (s.actsUp()) {
          e.delayUpNs += s.delayMs * 1'000'000;
          e.jitterUpNs += s.jitterMs * 1'000'000;
        }
        if (s.actsDown()) {
          e.delayDownNs += s.delayMs * 1'000'000;
          e.jitterDownNs += s.jitterMs * 1'000'000;
        }
        break;
      case FaultKind::BANDWIDTH:
        if (s.actsUp()) e.rateUp = e.rateUp == 0 ? s.bytesPerSec : std::min(e.rateUp, s.bytesPerSec);
        if (s.actsDown()) e.rateDown = e.rateDown == 0 ? s.bytesPerSec : std::min(e.rateDown, s.bytesPerSec);
        break;
      case FaultKind::BLACKHOLE: e.hold = true; break;
      case FaultKind::TIMEOUT: {
        e.hold = true;
        int64_t at = std::max(faults_[f].startNs, c.openedNs) + s.durationMs * 1'000'000;
        if (e.closeAtNs == 0 || at < e.closeAtNs) {
          e.closeAtNs = at;
          e.closeFault = static_cast<int>(f);
        }
        break;
      }
      case FaultKind::SLOW_CLOSE: e.slowCloseNs = std::max(e.slowCloseNs, s.durationMs * 1'000'000); break;
      case FaultKind::LIMIT_DATA: e.limitFaults.push_back(static_cast<int>(f)); break;
      case FaultKind::SLICER:
        e.sliceBytes = s.bytes;
        e.sliceJitter = s.bytesJitter;
        e.slicePauseNs = s.delayMs * 1'000'000;
        break;
      case FaultKind::RESET: break;  // acts at the window's start and on accept
    }
  }
  return e;
}

// ---- Connections.

void Relay::accept(size_t listener, int64_t nowNs) {
  const SessionTarget& target = config_.sessions[listener];
  for (;;) {
    // The upstream socket first: a client is accepted only when both its
    // fds can be had. Out of fds (or memory) at either step, the client
    // waits in the backlog and is tried again once the listener's pause is
    // over; accepting it and then failing the socket would reset it, and
    // every client behind it in turn.
    UniqueFd server(::socket(target.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!server && outOfResources(errno)) {
      pauseListener(listener, nowNs);
      return;
    }
    int fd = ::accept4(listeners_[listener].get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      // EAGAIN: all taken (the socket made for a next one is closed).
      if (outOfResources(errno)) pauseListener(listener, nowNs);
      return;
    }
    UniqueFd client(fd);
    auto c = std::make_unique<Conn>();
    c->id = nextConnId_++;
    c->session = target.id;
    c->openedNs = nowNs;
    c->up.up = true;
    c->down.up = false;
    c->limitBytes.assign(faults_.size(), {0, 0});
    c->limitOccurrence.assign(faults_.size(), 0);
    bool reset = false;
    for (size_t f = 0; f < faults_.size(); ++f) {
      if (!faultApplies(f, target.id)) continue;
      ++faults_[f].connections;
      if (config_.faults[f].kind == FaultKind::RESET) {
        reset = true;
        ++faults_[f].resets;
      }
    }
    if (reset) {
      setResetOnClose(client.get());
      continue;  // closed with RST by client's destructor
    }
    if (!server) {  // a socket the target's family cannot have: the client is refused
      setResetOnClose(client.get());
      continue;
    }
    setNoDelay(client.get());
    setNoDelay(server.get());
    int rc = ::connect(server.get(), reinterpret_cast<const sockaddr*>(&target.addr), target.addrLen);
    if (rc != 0 && errno != EINPROGRESS) {
      setResetOnClose(client.get());  // the target refused: so does the relay
      continue;
    }
    c->connecting = rc != 0;
    c->client = std::move(client);
    c->server = std::move(server);
    c->wakeNs = nowNs;
    Conn& ref = *c;
    conns_.emplace(c->id, std::move(c));
    updateInterest(ref);
  }
}

void Relay::pauseListener(size_t listener, int64_t nowNs) {
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = tagged(listener, TAG_LISTENER);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listeners_[listener].get(), &ev) != 0) return;
  pausedListeners_.push_back(listener);
  if (listenersResumeNs_ == 0) listenersResumeNs_ = nowNs + LISTENER_PAUSE_NS;
}

void Relay::resumeListeners(int64_t nowNs) {
  if (listenersResumeNs_ == 0 || nowNs < listenersResumeNs_) return;
  // One that could not be put back (no such failure is known) stays paused
  // and is tried again: a listener is never left out for good.
  std::erase_if(pausedListeners_, [&](size_t l) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = tagged(l, TAG_LISTENER);
    return ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listeners_[l].get(), &ev) == 0;
  });
  listenersResumeNs_ = pausedListeners_.empty() ? 0 : nowNs + LISTENER_PAUSE_NS;
}

void Relay::updateInterest(Conn& c) {
  auto want = [&](const Flow& readFlow, const Flow& writeFlow, bool connectingSide) {
    uint32_t ev = 0;
    if (!readFlow.eof && readFlow.queued < config_.bufferBytes && !readFlow.readReady) ev |= EPOLLIN;
    if (connectingSide || (!writeFlow.writeReady && (!writeFlow.queue.empty() || writeFlow.pipeBytes > 0))) {
      ev |= EPOLLOUT;
    }
    return ev;
  };
  // The client is read by the up flow and written by the down flow.
  uint32_t clientWant = want(c.up, c.down, false);
  uint32_t serverWant = want(c.down, c.up, c.connecting);
  if (c.connecting) serverWant &= ~uint32_t{EPOLLIN};
  auto apply = [&](int fd, uint32_t& have, uint32_t wantEv, uint64_t tag, bool gone) {
    if (fd < 0 || have == GONE) return;
    if (gone) {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
      have = GONE;
      return;
    }
    if (have == wantEv) return;
    epoll_event ev{};
    ev.events = wantEv;
    ev.data.u64 = tagged(c.id, tag);
    // Added once, then modified: one call per change of interest.
    int op = have == NOT_ADDED ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    sysCall("epoll_ctl", [&] { return ::epoll_ctl(epoll_.get(), op, fd, &ev); });
    have = wantEv;
  };
  apply(c.client.get(), c.clientEvents, clientWant, TAG_CLIENT, c.clientGone);
  apply(c.server.get(), c.serverEvents, serverWant, TAG_SERVER, c.serverGone);
}

void Relay::closeConn(uint64_t id, bool reset) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Conn& c = *it->second;
  if (reset) {
    setResetOnClose(c.client.get());
    setResetOnClose(c.server.get());
  }
  // close() removes the fds from the epoll set.
  conns_.erase(it);
}

Relay::Pumped Relay::pump(Conn& c, Flow& flow, int from, int to, const Effects& e, int64_t nowNs) {
  const bool up = flow.up;
  const int64_t delayNs = up ? e.delayUpNs : e.delayDownNs;
  const int64_t jitterNs = up ? e.jitterUpNs : e.jitterDownNs;
  const uint64_t rate = up ? e.rateUp : e.rateDown;
  const bool plain = !c.connecting && !e.hold && rate == 0 && e.sliceBytes == 0 && e.limitFaults.empty() &&
                     delayNs == 0 && jitterNs == 0;
  // A fault came into force with bytes in the pipe: they join the queue
  // as bytes read before the window (due now, as queued bytes already are:
  // a blackhole or a bandwidth limit acts on them, a latency does not).
  if (flow.pipeBytes > 0 && !plain && !unpipe(flow, nowNs)) return Pumped::RESET;
  if (plain && flow.pipeR && flow.queue.empty()) {
    Pumped p = splicePump(c, flow, from, to, nowNs);
    if (p == Pumped::OPEN) passFin(c, flow, to, e, nowNs);
    return p;
  }

  // Read, then write; again while a write made room for more to read
  // (a bounded number of times, then the loop comes back: other
  // connections get their turn).
  for (int pass = 0;; ++pass) {
  // Read what the socket has, up to the buffer's bound.
  while (flow.readReady && !flow.eof && flow.queued < config_.bufferBytes) {
    size_t room = std::min(READ_BYTES, config_.bufferBytes - flow.queued);
    ssize_t n = ::read(from, scratch_.data(), room);
    if (n > 0) {
      int64_t due = nowNs;
      if (delayNs > 0 || jitterNs > 0) {
        int64_t j = 0;
        if (jitterNs > 0) j = std::uniform_int_distribution<int64_t>(-jitterNs, jitterNs)(rng_);
        due = std::max(nowNs, nowNs + delayNs + j);
      }
      due = std::max(due, flow.lastDueNs);  // jitter never reorders bytes
      flow.lastDueNs = due;
      size_t off = 0;
      // No fault shaping this direction and nothing queued before: straight
      // from the read buffer to the other socket, no copy (the relay's
      // common case, and its cost when no fault is in force).
      if (plain && due <= nowNs && flow.queue.empty() && flow.writeReady) {
        // A read of 16 KiB or more: a bulk flow (an SSH transfer's reads
        // are 16-64 KiB, interactive traffic's a few hundred bytes); from
        // its next pump on it goes through a pipe.
        if (static_cast<size_t>(n) >= BULK_READ_BYTES && !flow.pipeTried) makePipe(flow);
        ssize_t w = ::send(to, scratch_.data(), static_cast<size_t>(n), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return Pumped::RESET;
        if (w < n) flow.writeReady = false;
        off = w > 0 ? static_cast<size_t>(w) : 0;
        if (off == static_cast<size_t>(n)) continue;
      }
      size_t rest = static_cast<size_t>(n) - off;
      // Coalesce with the tail when due together: small reads of a bulk
      // stream do not become many chunks.
      if (!flow.queue.empty() && flow.queue.back().dueNs == due && flow.queue.back().data.size() < READ_BYTES) {
        flow.queue.back().data.append(scratch_.data() + off, rest);
      } else {
        flow.queue.push_back(Chunk{due, std::string(scratch_.data() + off, rest), 0});
      }
      flow.queued += rest;
      if (e.hold) {
        for (size_t f = 0; f < faults_.size(); ++f) {
          FaultKind k = config_.faults[f].kind;
          if ((k == FaultKind::BLACKHOLE || k == FaultKind::TIMEOUT) && faultApplies(f, c.session)) {
            faults_[f].bytesHeld += static_cast<uint64_t>(n);
          }
        }
      }
    } else if (n == 0) {
      flow.eof = true;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      flow.readReady = false;
    } else if (errno != EINTR) {
      return Pumped::RESET;  // reset by the peer: the other side gets a reset too
    }
  }

  if (c.connecting || e.hold) return Pumped::OPEN;
  const size_t queuedBefore = flow.queued;

  // Write what is due, within the bandwidth, slice and limit.
  while (flow.writeReady && !flow.queue.empty()) {
    Chunk& chunk = flow.queue.front();
    if (chunk.dueNs > nowNs) {
      wakeAt(c, chunk.dueNs);
      break;
    }
    size_t len = chunk.data.size() - chunk.off;
    if (rate > 0) {
      // A bucket of 20 ms of the rate (at least 1 KB): short bursts only.
      double cap = std::max(1024.0, static_cast<double>(rate) / 50.0);
      if (flow.tokensAtNs == 0) flow.tokens = cap;
      else flow.tokens = std::min(cap, flow.tokens + static_cast<double>(rate) * double(nowNs - flow.tokensAtNs) / 1e9);
      flow.tokensAtNs = nowNs;
      if (flow.tokens < 1.0) {
        wakeAt(c, nowNs + static_cast<int64_t>((1.0 - flow.tokens) * 1e9 / double(rate)) + 1'000'000);
        break;
      }
      len = std::min(len, static_cast<size_t>(flow.tokens));
    }
    if (e.sliceBytes > 0) {
      if (nowNs < flow.nextSliceNs) {
        wakeAt(c, flow.nextSliceNs);
        break;
      }
      uint64_t s = e.sliceBytes;
      if (e.sliceJitter > 0) {
        s += std::uniform_int_distribution<uint64_t>(0, 2 * e.sliceJitter)(rng_);
        s -= e.sliceJitter;
      }
      len = std::min(len, static_cast<size_t>(std::max<uint64_t>(1, s)));
    }
    int limitHit = -1;
    for (int f : e.limitFaults) {
      const FaultSpec& s = config_.faults[f];
      if (!(up ? s.actsUp() : s.actsDown())) continue;
      if (c.limitOccurrence[f] != faults_[f].occurrence.number) {
        c.limitOccurrence[f] = faults_[f].occurrence.number;
        c.limitBytes[f] = {0, 0};
      }
      uint64_t used = c.limitBytes[f][0] + c.limitBytes[f][1];
      uint64_t left = s.bytes > used ? s.bytes - used : 0;
      if (left == 0) limitHit = f;
      len = std::min<size_t>(len, left);
    }
    if (limitHit >= 0) {
      ++faults_[limitHit].resets;
      return Pumped::CLOSED;
    }
    ssize_t n = ::send(to, chunk.data.data() + chunk.off, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        flow.writeReady = false;
        break;
      }
      if (errno == EINTR) continue;
      return Pumped::RESET;
    }
    chunk.off += static_cast<size_t>(n);
    flow.queued -= static_cast<size_t>(n);
    if (rate > 0) flow.tokens -= static_cast<double>(n);
    if (e.sliceBytes > 0) flow.nextSliceNs = nowNs + e.slicePauseNs;
    for (int f : e.limitFaults) {
      const FaultSpec& s = config_.faults[f];
      if (up ? s.actsUp() : s.actsDown()) c.limitBytes[f][up ? 0 : 1] += static_cast<uint64_t>(n);
    }
    if (chunk.off == chunk.data.size()) flow.queue.pop_front();
    if (static_cast<size_t>(n) < len) {
      flow.writeReady = false;
      break;
    }
  }
  bool moreToRead = flow.readReady && !flow.eof && flow.queued < config_.bufferBytes;
  if (!moreToRead || flow.queued == queuedBefore) break;
  if (pass == 16) {
    wakeAt(c, nowNs);
    break;
  }
  }

  passFin(c, flow, to, e, nowNs);
  return Pumped::OPEN;
}

// Passes the FIN on once everything before it is written.
void Relay::passFin(Conn& c, Flow& flow, int to, const Effects& e, int64_t nowNs) {
  if (!flow.eof || !flow.queue.empty() || flow.pipeBytes > 0 || flow.shutSent) return;
  if (e.slowCloseNs > 0) {
    if (flow.closeAtNs == 0) flow.closeAtNs = nowNs + e.slowCloseNs;
    if (nowNs < flow.closeAtNs) {
      wakeAt(c, flow.closeAtNs);
      return;
    }
  }
  ::shutdown(to, SHUT_WR);
  flow.shutSent = true;
}

// Tried once per flow. No pipe (out of fds), or one the kernel made small
// (a user past fs.pipe-user-pages-soft gets 8 KiB pipes, which would take
// more calls per MB than read/send): the flow keeps read/send. The default
// size, 64 KiB, is kept: a larger one would count against that per-user
// limit, shared with the user's other processes (sshd, the agents).
void Relay::makePipe(Flow& flow) {
  flow.pipeTried = true;
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return;
  UniqueFd r(fds[0]), w(fds[1]);
  const int cap = ::fcntl(fds[1], F_GETPIPE_SZ);
  if (cap < static_cast<int>(READ_BYTES)) return;
  flow.pipeR = std::move(r);
  flow.pipeW = std::move(w);
  flow.pipeCap = static_cast<size_t>(cap);
}

namespace {

// TCP urgent data: a splice stops at its mark (moving nothing: EAGAIN, or 0
// if a FIN follows), where read() steps over the urgent byte.
bool atUrgentMark(int fd) {
  int mark = 0;
  return ::ioctl(fd, SIOCATMARK, &mark) == 0 && mark != 0;
}

}  // namespace

// Moves the pipe's bytes to the (empty) queue, due now.
bool Relay::unpipe(Flow& flow, int64_t nowNs) {
  std::string data;
  while (data.size() < flow.pipeBytes) {
    ssize_t n = ::read(flow.pipeR.get(), scratch_.data(), std::min(scratch_.size(), flow.pipeBytes - data.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.append(scratch_.data(), static_cast<size_t>(n));
  }
  flow.pipeBytes = 0;
  flow.lastDueNs = std::max(flow.lastDueNs, nowNs);
  flow.queue.push_front(Chunk{nowNs, std::move(data), 0});
  return true;
}

// The unshaped bulk path: socket -> pipe -> socket, the pipe drained before
// it is filled again (so a splice into it never waits on the pipe being
// full, and its EAGAIN means the socket is empty).
Relay::Pumped Relay::splicePump(Conn& c, Flow& flow, int from, int to, int64_t nowNs) {
  constexpr unsigned FLAGS = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
  for (int pass = 0;; ++pass) {
    if (flow.pipeBytes > 0) {
      if (!flow.writeReady) break;
      ssize_t w = ::splice(flow.pipeR.get(), nullptr, to, nullptr, flow.pipeBytes, FLAGS);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return Pumped::RESET;
        flow.writeReady = false;
        break;
      }
      flow.pipeBytes -= static_cast<size_t>(w);
      flow.queued -= static_cast<size_t>(w);
      if (flow.pipeBytes > 0) {
        flow.writeReady = false;
        break;
      }
    }
    if (!flow.readReady || flow.eof) break;
    const size_t room = std::min(flow.pipeCap, config_.bufferBytes - flow.queued);
    if (room == 0) break;
    if (pass == 16) {  // other connections get their turn
      wakeAt(c, nowNs);
      break;
    }
    ssize_t n = ::splice(from, nullptr, flow.pipeW.get(), nullptr, room, FLAGS);
    const int err = errno;
    if (n > 0) {
      flow.pipeBytes += static_cast<size_t>(n);
      flow.queued += static_cast<size_t>(n);
    } else if ((n == 0 || err == EAGAIN || err == EWOULDBLOCK) && atUrgentMark(from)) {
      // Stuck at urgent data (the pipe is empty here): the flow goes back
      // to read/send for good, which steps over it; served again now.
      flow.pipeR.reset();
      flow.pipeW.reset();
      wakeAt(c, nowNs);
      break;
    } else if (n == 0) {
      flow.eof = true;
    } else if (err == EAGAIN || err == EWOULDBLOCK) {
      flow.readReady = false;
    } else if (err != EINTR) {
      return Pumped::RESET;  // reset by the peer: the other side gets a reset too
    }
  }
  return Pumped::OPEN;
}

void Relay::service(Conn& c, int64_t nowNs) {
  c.wakeNs = 0;
  Effects e = effectsFor(c, nowNs);
  if (e.closeAtNs > 0) {
    if (nowNs >= e.closeAtNs) {
      ++faults_[e.closeFault].resets;
      closeConn(c.id, false);
      return;
    }
    c.wakeNs = e.closeAtNs;
  }
  uint64_t id = c.id;
  Pumped p = pump(c, c.up, c.client.get(), c.server.get(), e, nowNs);
  if (p == Pumped::OPEN) p = pump(c, c.down, c.server.get(), c.client.get(), e, nowNs);
  if (p != Pumped::OPEN) {
    closeConn(id, p == Pumped::RESET);
    return;
  }
  if (c.up.shutSent && c.down.shutSent) {
    closeConn(id, false);
    return;
  }
  updateInterest(c);
}

// ---- The loop.

void Relay::run() {
  std::array<epoll_event, 256> events{};
  std::vector<uint64_t> due;
  while (!stopping_) {
    int64_t nowNs = monoNs();
    advanceSchedule(nowNs);
    resumeListeners(nowNs);
    // Connections with a deadline: their own, or the schedule's (and the
    // end of a listener's pause).
    int64_t next = nextScheduleNs();
    if (listenersResumeNs_ != 0) next = std::min(next, listenersResumeNs_);
    due.clear();
    for (auto& [id, c] : conns_) {
      if (c->wakeNs == 0) continue;
      if (c->wakeNs <= nowNs) due.push_back(id);
      else next = std::min(next, c->wakeNs);
    }
    for (uint64_t id : due) {
      auto it = conns_.find(id);
      if (it != conns_.end()) service(*it->second, nowNs);
    }
    // A service may set a new deadline now or later.
    for (auto& [id, c] : conns_) {
      if (c->wakeNs != 0) next = std::min(next, c->wakeNs);
    }
    int timeoutMs = -1;
    if (next != NEVER) {
      int64_t waitNs = next - monoNs();
      // Rounded up: waking a little early would spin.
      timeoutMs = waitNs <= 0 ? 0 : static_cast<int>(std::min<int64_t>((waitNs + 999'999) / 1'000'000, 60'000));
    }
    int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeoutMs);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("epoll_wait");
    }
    nowNs = monoNs();
    advanceSchedule(nowNs);
    due.clear();
    for (int i = 0; i < n; ++i) {
      uint64_t tag = events[i].data.u64 & 3;
      uint64_t id = events[i].data.u64 >> 2;
      uint32_t ev = events[i].events;
      if (tag == TAG_STOP) {
        stopping_ = true;
        continue;
      }
      if (tag == TAG_LISTENER) {
        accept(id, nowNs);
        continue;
      }
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      Conn& c = *it->second;
      bool errorOrHup = (ev & (EPOLLERR | EPOLLHUP)) != 0;
      if (tag == TAG_CLIENT) {
        if (errorOrHup) c.clientGone = true;
        if (ev & EPOLLIN || errorOrHup) c.up.readReady = true;
        if (ev & EPOLLOUT || errorOrHup) c.down.writeReady = true;
      } else {
        if (c.connecting && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
          int err = 0;
          socklen_t len = sizeof err;
          ::getsockopt(c.server.get(), SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            closeConn(id, true);  // the target refused: the client gets a reset
            continue;
          }
          c.connecting = false;
        }
        if (errorOrHup) c.serverGone = true;
        if (ev & EPOLLIN || errorOrHup) c.down.readReady = true;
        if (ev & EPOLLOUT || errorOrHup) c.up.writeReady = true;
      }
      due.push_back(id);
    }
    std::sort(due.begin(), due.end());
    due.erase(std::unique(due.begin(), due.end()), due.end());
    for (uint64_t id : due) {
      auto it = conns_.find(id);
      if (it != conns_.end()) service(*it->second, nowNs);
    }
  }
  int64_t nowNs = monoNs();
  for (size_t f = 0; f < faults_.size(); ++f) {
    if (faults_[f].active) endWindow(f, nowNs);
  }
  conns_.clear();
}

}  // namespace sshsoak::proxy
