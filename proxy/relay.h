// sshsoak-proxy's relay: one epoll loop for every session's connections.
// Each session has its own listening port on 127.0.0.1; a connection to it
// is relayed to that session's real target, through the faults in force
// (docs/reference.md, "Network faults and reconnect pacing"). Memory per
// connection is bounded: a direction holds at most bufferBytes; when full,
// the relay stops reading that socket and TCP pushes back.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "shared/fault_spec.h"
#include "shared/fd.h"

namespace sshsoak::proxy {

struct SessionTarget {
  uint32_t id = 0;
  sockaddr_storage addr{};
  socklen_t addrLen = 0;
};

// What the relay tells the supervisor: a window began or ended.
struct WindowReport {
  bool started = true;
  uint32_t faultId = 0;
  uint32_t occurrence = 0;
  int64_t wallNs = 0;        // when it happened
  uint64_t connections = 0;  // started: open at the start; ended: touched
  int64_t durationMs = 0;    // ended only
  uint64_t bytesHeld = 0;
  uint64_t resets = 0;
};

struct RelayConfig {
  int64_t startMonoNs = 0;  // the run's start: WHEN is measured from it
  std::vector<FaultSpec> faults;
  std::vector<SessionTarget> sessions;
  size_t bufferBytes = 256 * 1024;  // per connection and direction
  uint64_t seed = 1;
};

class Relay {
 public:
  // Binds one listening port per session (127.0.0.1, ephemeral).
  Relay(RelayConfig config, std::function<void(const WindowReport&)> report);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  std::vector<uint16_t> ports() const;
  // Watches fd too: readable means "stop" (EOF or a byte on the control pipe).
  void addStopFd(int fd);  // several may be added
  // Runs until stop() or the stop fd; then ends open windows (reported)
  // and closes every connection.
  void run();
  void stop() { stopping_ = true; }
  size_t openConnections() const { return conns_.size(); }

 private:
  static constexpr uint32_t NOT_ADDED = UINT32_MAX, GONE = UINT32_MAX - 1;
  struct Chunk {
    int64_t dueNs = 0;
    std::string data;
    size_t off = 0;
  };
  struct Flow {
    bool up = true;
    std::deque<Chunk> queue;
    size_t queued = 0;
    bool readReady = false;
    bool writeReady = true;
    bool eof = false;       // its source sent FIN
    bool shutSent = false;  // FIN passed on
    int64_t closeAtNs = 0;  // slow-close: when the FIN goes on
    int64_t lastDueNs = 0;  // latency's jitter keeps the order
    double tokens = 0;      // bandwidth
    int64_t tokensAtNs = 0;
    int64_t nextSliceNs = 0;  // slicer
    // A bulk flow with no fault shaping it goes socket -> pipe -> socket
    // with splice(2), never copied through user space. The pipe is made
    // (tried once) on the flow's first read of 16 KiB or more; interactive
    // traffic keeps read/send and its fds. Its bytes count in `queued`.
    // Invariant: the pipe holds bytes only while `queue` is empty.
    UniqueFd pipeR, pipeW;
    size_t pipeBytes = 0;
    size_t pipeCap = 0;
    bool pipeTried = false;
  };
  struct Conn {
    uint64_t id = 0;
    uint32_t session = 0;
    int64_t openedNs = 0;
    UniqueFd client, server;
    bool connecting = true;
    // epoll interest now; NOT_ADDED before the first call, GONE once the
    // socket reported an error or hang-up (it is then left to the timers:
    // EPOLLHUP cannot be masked, and would wake the loop without end).
    uint32_t clientEvents = NOT_ADDED, serverEvents = NOT_ADDED;
    bool clientGone = false, serverGone = false;
    Flow up, down;
    // limit-data: bytes forwarded per fault (up, down) in its occurrence.
    std::vector<std::array<uint64_t, 2>> limitBytes;
    std::vector<uint32_t> limitOccurrence;
    int64_t wakeNs = 0;  // when it needs service without an fd event (0: never)
  };
  // Asks for c's service at `at` (or sooner, if it already wants that).
  static void wakeAt(Conn& c, int64_t at) {
    if (c.wakeNs == 0 || at < c.wakeNs) c.wakeNs = at;
  }
  // What the faults in force do to one session's connections now.
  struct Effects {
    bool hold = false;  // blackhole, timeout
    int64_t delayUpNs = 0, delayDownNs = 0, jitterUpNs = 0, jitterDownNs = 0;
    uint64_t rateUp = 0, rateDown = 0;  // bytes/s, 0: none
    uint64_t sliceBytes = 0, sliceJitter = 0;
    int64_t slicePauseNs = 0;
    int64_t slowCloseNs = 0;
    int64_t closeAtNs = 0;  // timeout: close the connection then (0: no)
    int closeFault = -1;
    std::vector<int> limitFaults;  // limit-data faults in force
  };
  struct FaultState {
    bool active = false;
    FaultOccurrence occurrence;
    uint32_t lastStarted = 0;
    int64_t startNs = 0;
    uint64_t connections = 0;
    uint64_t bytesHeld = 0;
    uint64_t resets = 0;
  };

  int64_t nowMs(int64_t nowNs) const { return (nowNs - config_.startMonoNs) / 1'000'000; }
  void advanceSchedule(int64_t nowNs);
  void startWindow(size_t f, const FaultOccurrence& o, int64_t nowNs);
  void endWindow(size_t f, int64_t nowNs);
  int64_t nextScheduleNs() const;
  Effects effectsFor(const Conn& c, int64_t nowNs) const;
  bool faultApplies(size_t f, uint32_t session) const;

  void accept(size_t listener, int64_t nowNs);
  // Out of fds: a listener stays readable while accept fails, so it is
  // left out of the epoll set for a while (its clients wait in the backlog)
  // instead of waking the loop without end.
  void pauseListener(size_t listener, int64_t nowNs);
  void resumeListeners(int64_t nowNs);
  void service(Conn& c, int64_t nowNs);
  // What a pump left the connection as: the caller closes and erases it
  // unless OPEN (CLOSED: with FIN, as limit-data does; RESET: with RST, as
  // a peer's reset or a failed write is passed on).
  enum class Pumped { OPEN, CLOSED, RESET };
  Pumped pump(Conn& c, Flow& flow, int from, int to, const Effects& e, int64_t nowNs);
  void passFin(Conn& c, Flow& flow, int to, const Effects& e, int64_t nowNs);
  Pumped splicePump(Conn& c, Flow& flow, int from, int to, int64_t nowNs);
  void makePipe(Flow& flow);
  bool unpipe(Flow& flow, int64_t nowNs);
  void updateInterest(Conn& c);
  void closeConn(uint64_t id, bool reset);

  RelayConfig config_;
  std::function<void(const WindowReport&)> report_;
  UniqueFd epoll_;
  std::vector<UniqueFd> listeners_;
  std::vector<uint16_t> ports_;
  std::vector<size_t> pausedListeners_;
  int64_t listenersResumeNs_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::vector<FaultState> faults_;
  uint64_t nextConnId_ = 1;
  bool stopping_ = false;
  std::mt19937_64 rng_;
  std::vector<char> scratch_;
};

}  // namespace sshsoak::proxy
