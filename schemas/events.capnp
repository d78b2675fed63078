# The wire contract between the supervisor (sshsoak) and its session agents
# (sshsoak-agent). It is the single source of truth for event kinds and their
# fields: the supervisor's JSONL writer derives event names from the union
# below. Both directions use Cap'n Proto's standard stream framing on a pipe.
#
#   agent -> supervisor : a stream of Event on fd 3
#   supervisor -> agent : one AgentConfig, then a stream of Command on fd 4
#
# Compatibility: new fields and union members may be added (at the end, with
# new ordinals); nothing is ever renumbered or removed.
@0xede7fd2d86881f9d;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("sshsoak::wire");

enum Intensity {
  low @0;     # 5 echo lines per PTY cycle
  medium @1;  # 20 echo lines
  high @2;    # 200 lines of `yes`
}

enum HostKeyPolicy {
  strict @0;     # the host must already be in known_hosts with this key
  acceptNew @1;  # unknown hosts are added; a changed key is refused
  off @2;        # no verification at all
}

# Everything an agent needs to run one session. Sent over the command pipe
# rather than argv or the environment, so that secrets (the passphrase)
# never show in ps, /proc/PID/environ or a log.
struct AgentConfig {
  sessionId @0 :UInt32;
  host @1 :Text;
  port @2 :UInt16;
  user @3 :Text;
  keyPath @4 :Text;
  passphrase @5 :Text;
  knownHostsPath @6 :Text;
  hostKeyPolicy @7 :HostKeyPolicy;
  pollIntervalMs @8 :UInt32;    # superseded by workloads, not read
  intensity @9 :Intensity;      # superseded by workloads, not read
  reconnectTimeoutMs @10 :UInt32;
  maxReconnectAttempts @11 :UInt32;
  keepaliveIntervalMs @12 :UInt32;
  keepaliveCountMax @13 :UInt32;
  supervisorPid @14 :Int32;     # the agent exits if its parent is not this
  backoffBaseMs @15 :UInt32;
  backoffCapMs @16 :UInt32;
  tokenBucketName @17 :Text;    # POSIX shm name; empty = no shared bucket
  crashForTesting @18 :Bool;    # test-only: abort right after start
  ptyIntervalMs @19 :UInt32;    # superseded by workloads, not read
  workloads @20 :List(WorkloadSpec);  # run side by side on every session, stepped in this order
  # High-rate detail (issue 14): each PTY cycle and exec poll is folded into
  # one ptyStats / execPollStats per rollupMs; logDetailFull also sends the
  # per-cycle ptyCycle / execPoll events (--log-detail full).
  rollupMs @21 :UInt32;
  logDetailFull @22 :Bool;
  # Test only (--leak-*-for-testing): the agent keeps one more open fd, or
  # this many more KiB of touched heap, after every PTY cycle: a leak the
  # leak verdict must catch.
  leakFdPerCycleForTesting @23 :Bool;
  leakKbPerCycleForTesting @24 :UInt32;
  # Hardening (issue 15): with no other event for heartbeatMs the agent sends
  # a heartbeat; the supervisor kills an agent silent for 3 heartbeats
  # (agent_unresponsive). 0: no heartbeats, no watchdog.
  heartbeatMs @25 :UInt32;
  # Test only (--hang-for-testing MS): this long after its start the agent
  # stops sending anything and spins (a busy loop that never waits), for the
  # watchdog to catch. 0: never.
  hangForTestingAfterMs @26 :UInt32;
  # Test only (--garbage-for-testing): right after agent_started the agent
  # writes a frame that is not an Event, for the supervisor's protocol-error
  # path to catch.
  garbageForTesting @27 :Bool;
}

# One workload of a session (session_agent/workloads/). Each member's spec is
# read by session_agent/workloads/registry.cpp; a new workload adds a member.
struct WorkloadSpec {
  union {
    pty @0 :PtyWorkloadSpec;
    execPoll @1 :ExecPollWorkloadSpec;
    churn @2 :ChurnWorkloadSpec;        # replaces the session: connections back to back
    transfer @3 :TransferWorkloadSpec;
    jobs @4 :JobsWorkloadSpec;          # replaces the session: a worker running jobs it is sent
  }
}

# A long-lived PTY channel printing a burst of lines, then sleeping.
struct PtyWorkloadSpec {
  intensity @0 :Intensity;
  intervalMs @1 :UInt32;        # pause between bursts (the remote sleep)
  retryIntervalMs @2 :UInt32;   # after a failed PTY channel, before the next one
}

# A round of exec commands, one channel each, one after the other.
struct ExecPollWorkloadSpec {
  intervalMs @0 :UInt32;        # from one round's start to the next
  commands @1 :List(Text);      # empty: the agent's standard round (pollCommands())
}

# --workload churn: the agent holds no long-lived session; it opens
# connections back to back on an open-loop schedule shared by every agent
# of the run (agent k of n takes every n-th intended start, offset by k),
# so a connection's latency counts from when it should have started.
struct ChurnWorkloadSpec {
  rateStartPerSec @0 :Float64;  # the whole run's target; 0: as fast as the server takes them
  rateEndPerSec @1 :Float64;    # == rateStartPerSec: no ramp
  rampMs @2 :UInt32;            # the ramp's length; 0: no ramp
  rampSteps @3 :UInt32;         # the target rises in this many equal steps over rampMs
  agents @4 :UInt32;            # the run's agents that share the rate
  agentIndex @5 :UInt32;        # this agent's place among them (its session id)
  scheduleStartNs @6 :Int64;    # CLOCK_REALTIME when the run's schedule began; an agent
                                # that joins later (a restart) takes its first intended
                                # start at or after its own start, never a backlog
  command @7 :Text;             # exec'd on each connection; empty: no channel at all
  reportIntervalMs @8 :UInt32;  # one churnStats per interval
  logEachConnection @9 :Bool;   # also one churnConnection per connection
  connectTimeoutMs @10 :UInt32; # one connection, TCP to close
}

enum TransferDirection {
  up @0;    # agent -> server
  down @1;  # server -> agent
}

# --workload transfer: rounds of bulk data on one long-lived session, each
# verified end to end by SHA-256. With both directions, rounds alternate
# (up, down, up, ...), so each round's rate and CPU are its own.
struct TransferWorkloadSpec {
  up @0 :Bool;
  down @1 :Bool;
  bytesPerRound @2 :UInt64;
  # Remote commands, "{bytes}" replaced by bytesPerRound. Up: reads stdin to
  # EOF, prints the SHA-256 of what it read (sha256sum's format) on stdout.
  # Down: writes the data on stdout and its SHA-256 on stderr. The agent
  # takes the last 64-hex-digit word it sees (shell noise is ignored).
  upCommand @3 :Text;
  downCommand @4 :Text;
  windowBytes @5 :UInt32;       # the channel's receive window we ask for
  writeBytes @6 :UInt32;        # the size of each write we hand libssh2
  stallMs @7 :UInt32;           # no progress this long is a stall (reported, not a failure)
  pauseMs @8 :UInt32;           # between rounds
}

enum FailureStrategy {
  continue @0;     # a failed command: go on with the next one
  abortFirst @1;   # a failed command ends the job at once
  abortAfterN @2;  # the job ends at its failureThreshold-th failed command
}

# --workload jobs: the agent is a worker. The supervisor owns the queue and
# sends one Job at a time (Command.runJob); the worker answers each with
# exactly one jobResult and is then idle again. Connections are the
# worker's: with reuse, cached per target (user, host, port) and checked
# for liveness before each reuse; without, opened and closed per job.
struct JobsWorkloadSpec {
  maxIdleMs @0 :UInt32;           # a cached connection unused this long is closed (0: never)
  maxConnections @1 :UInt32;      # cached connections per worker; the least recently used goes first
  failureStrategy @2 :FailureStrategy;
  failureThreshold @3 :UInt32;    # abortAfterN's N (>= 1)
  commandTimeoutMs @4 :UInt32;    # per command, unless the job says otherwise
  connectTimeoutMs @5 :UInt32;    # one connection: TCP, key exchange, auth
  livenessCheck @6 :Bool;         # a round trip (a channel open the server refuses) before reusing a cached connection
}

struct Job {
  id @0 :UInt64;                  # the supervisor's; unique in the run
  host @1 :Text;
  port @2 :UInt16;
  user @3 :Text;
  commands @4 :List(Text);        # run in order, one exec channel each
  commandTimeoutMs @5 :UInt32;    # 0: the spec's
  reuse @6 :Bool;                 # may use (and leave) a cached connection; false: its own, closed after
  attempt @7 :UInt32;             # 1; 2 when a worker died with it in flight and it is run again
}

struct Command {
  union {
    shutdown @0 :Void;           # close the session cleanly, then exit 0
    dropConnection @1 :Void;     # fault injection: shut the socket now (jobs: every cached connection)
    runJob @2 :Job;              # jobs: run this; only sent to an idle worker
  }
}

enum FailureCategory {
  resolve @0;    # the host name did not resolve
  refused @1;    # TCP connection refused
  timeout @2;    # a step did not finish before its deadline
  protocol @3;   # SSH banner / key exchange / transport error
  hostkey @4;    # host key unknown (strict) or changed
  auth @5;       # the server refused our credentials
  socket @6;     # other socket error (reset, unreachable, ...)
  channel @7;    # a channel could not be opened or failed
  parse @8;      # the remote output could not be understood
  other @9;
  algorithms @10; # no algorithm in common (kex, host key, cipher or MAC): never retried
}

enum DisconnectCause {
  endOfFile @0;    # the server closed the connection (JSON "eof")
  reset @1;        # TCP reset
  silence @2;      # nothing received for keepalive interval x count-max
  socketError @3;  # any other socket error
  injected @4;     # our own fault injection shut the socket
  protocol @5;     # an SSH protocol error on an established session
}

struct Failure {
  category @0 :FailureCategory;
  message @1 :Text;   # the server's or libssh2's words
  libssh2Error @2 :Int32;
}

struct Connected {
  handshakeMs @0 :UInt32;   # TCP connect + SSH key exchange
  authMs @1 :UInt32;
  firstExecMs @2 :UInt32;   # the exec round trip that makes a session usable
  kex @3 :Text;
  hostKeyType @4 :Text;
  cipher @5 :Text;
  mac @6 :Text;
  hostKeyAdded @7 :Bool;    # accept-new recorded a new known_hosts entry
  fds @8 :UInt32;           # the agent's open fds once the session is usable (0: unknown);
                            # after a reconnect it is back to its first connect's, or fds leak
}

struct ExecPoll {
  rttMs @0 :UInt32;         # all three commands, first open to last close
  cpuBusyPct @1 :Float32;
  memUsedPct @2 :Float32;
  diskUsedPct @3 :Float32;
  bytes @4 :UInt32;
}

struct PtyCycle {
  bytes @0 :UInt64;
  lines @1 :UInt32;
  ms @2 :UInt32;            # first byte of the burst to its end marker
  cycle @3 :UInt32;         # the remote loop's counter
  expectedLines @4 :UInt32;
  echoUs @5 :List(UInt32);  # keystroke echo: one character written to the PTY until it came back
}

# A latency histogram (shared/histogram.h): HdrHistogram's counts-array
# layout (lowest 1, 2 significant digits: 256 sub-buckets), values in
# microseconds, sent sparse: the indices with a non-zero count.
# --log-detail rollup (the default): a session's PTY cycles over one
# interval, what the pty_cycle lines would have said, summed. Sent every
# rollupMs while cycles happen, and a last partial one before agentStopped.
struct PtyStats {
  intervalMs @0 :UInt32;
  cycles @1 :UInt32;
  shortCycles @2 :UInt32;   # cycles with fewer lines than expected
  bytes @3 :UInt64;
  lines @4 :UInt64;
  lastCycle @5 :UInt32;     # the remote loop's counter at the last cycle
  histograms @6 :List(Histogram);  # "cycle" (burst µs), "echo" (keystroke echo µs)
}

# --log-detail rollup: a session's exec polls over one interval.
struct ExecPollStats {
  intervalMs @0 :UInt32;
  polls @1 :UInt32;
  bytes @2 :UInt64;
  histograms @3 :List(Histogram);  # "rtt" (round µs)
  cpuBusyPctMax @4 :Float32;       # the remote host's figures: max over the interval ...
  memUsedPctLast @5 :Float32;      # ... and the last poll's
  diskUsedPctLast @6 :Float32;
}

struct Histogram {
  name @0 :Text;             # what it measures, e.g. "total", "kex"
  indices @1 :List(UInt32);
  counts @2 :List(UInt64);   # counts[i] at indices[i]
}

# Failures of one kind in a churn interval.
struct FailureCount {
  kind @0 :Text;     # refused, reset_before_banner, timeout_<phase>, kex, auth, exec, other
  count @1 :UInt32;
  example @2 :Text;  # the first message of this kind in the interval
}

# One churn interval of one agent: what it attempted, how long each phase
# took (histograms of this interval only; the reader merges them), what failed.
struct ChurnStats {
  intervalMs @0 :UInt32;
  targetPerSec @1 :Float64;   # the run-wide target at the interval's end (0: unpaced)
  attempted @2 :UInt32;       # connections started in the interval
  succeeded @3 :UInt32;
  failed @4 :UInt32;
  histograms @5 :List(Histogram);  # "tcp", "kex", "auth", "exec", "close", "total" (from the intended start), "service" (from the actual start)
  failures @6 :List(FailureCount);
  behindMs @7 :UInt32;        # how late the agent's next intended start is (0: on schedule)
  cpuMs @8 :UInt32;           # the agent's CPU time in the interval
}

# --log-each-connection: one line per connection (µs; 0: the phase was not reached).
struct ChurnConnection {
  lagUs @0 :UInt64;           # actual start - intended start
  tcpUs @1 :UInt64;
  kexUs @2 :UInt64;
  authUs @3 :UInt64;
  execUs @4 :UInt64;
  closeUs @5 :UInt64;
  totalUs @6 :UInt64;         # from the intended start
  failureKind @7 :Text;       # empty: it succeeded
  message @8 :Text;
}

struct TransferRound {
  direction @0 :TransferDirection;
  round @1 :UInt32;           # the session's round counter, from 1
  bytes @2 :UInt64;
  ms @3 :UInt32;              # the channel's open to the remote checksum's arrival
  mbPerSec @4 :Float64;       # MB = 10^6 bytes
  cpuMs @5 :UInt32;           # the agent's CPU time during the round
  windowBytes @6 :UInt32;
  writeBytes @7 :UInt32;
  sha256 @8 :Text;            # both ends agreed on it
  stalledMs @9 :UInt32;       # time spent in stalls in this round
}

struct TransferCorrupt {
  direction @0 :TransferDirection;
  round @1 :UInt32;
  bytes @2 :UInt64;
  localSha256 @3 :Text;       # what the agent sent or received
  remoteSha256 @4 :Text;      # what the server computed ("" if it sent none)
}

struct TransferStall {
  direction @0 :TransferDirection;
  round @1 :UInt32;
  stalledMs @2 :UInt32;       # how long nothing moved (reported once it moves again, or at the round's end)
  bufferedBytes @3 :UInt64;   # what the agent held meanwhile (bounded by one write)
}

enum JobOutcome {
  done @0;       # every command ran and exited 0
  failed @1;     # it ran to its end with a failed command (continue), or could not run at all
  aborted @2;    # the failure strategy stopped it before its last command
  cancelled @3;  # the run ended (shutdown) while it was running
}

# The one answer to a Job. Times in µs; 0: the step did not happen.
struct JobResult {
  jobId @0 :UInt64;
  outcome @1 :JobOutcome;
  attempt @2 :UInt32;
  reused @3 :Bool;               # served by a cached connection (no connect)
  connectUs @4 :UInt64;          # TCP + key exchange + auth of the connection it opened (0: reused)
  livenessUs @5 :UInt64;         # the liveness check before reuse (every check of this job)
  runUs @6 :UInt64;              # first channel open to the last command's end, less mid-job connects (in connectUs)
  commandsRun @7 :UInt32;        # commands started
  commandsFailed @8 :UInt32;     # non-zero exit, timeout, channel failure
  exitCodes @9 :List(Int32);     # one per command started; -1: no exit status (timeout, channel failure)
  failureKind @10 :Text;         # "" when done; else the first failure's kind (docs/reference.md, "Jobs")
  message @11 :Text;             # the first failure's words
  deadReplaced @12 :UInt32;      # cached connections found dead for this job and replaced
  connectionsOpened @13 :UInt32; # connections this job opened (0 or 1; 2 after a dead one mid-job)
}

enum JobCloseReason {
  idle @0;      # unused for maxIdleMs
  lru @1;       # the worker's maxConnections were reached: least recently used
  dead @2;      # the liveness check (or a failed channel) found it gone
  dropped @3;   # an injected drop (--drop) cut it
  tainted @4;   # a command timed out on it: its channel state is unknown, not reused
}

# A cached connection the worker closed for a reason of its own (not the
# per-job close of reuse off, not the end of the run).
struct JobConnectionClosed {
  host @0 :Text;
  port @1 :UInt16;
  user @2 :Text;
  reason @3 :JobCloseReason;
  ageMs @4 :UInt64;       # since it was opened
  idleMs @5 :UInt64;      # since its last job ended
  jobsServed @6 :UInt32;
}

struct Disconnected {
  cause @0 :DisconnectCause;
  silentMs @1 :UInt32;      # how long nothing had been received
  message @2 :Text;
}

# Sent only when the agent sent nothing else for heartbeatMs (issue 15).
struct Heartbeat {
  seq @0 :UInt64;
  phase @1 :Text;   # what the agent is doing ("connecting", "session", "backoff", ...)
}

# The PTY gave far more output than the workload asks for (issue 15).
struct PtyFlood {
  bytes @0 :UInt64;          # received in the window
  expectedBytes @1 :UInt64;  # what the workload's intensity makes in that window
  windowMs @2 :UInt32;
}

struct Started {
  pid @0 :Int32;
  version @1 :Text;
}

struct Event {
  sessionId @0 :UInt32;
  wallNs @1 :Int64;         # CLOCK_REALTIME when the agent saw it
  elapsedMs @2 :Int64 = -1; # -1 = none (JSON null)
  attempt @3 :Int32 = -1;   # -1 = none (JSON null)
  success @4 :Bool;
  detail @5 :Text;          # free text for humans; empty = derived
  union {
    started @6 :Started;
    connected @7 :Connected;
    connectFailed @8 :Failure;
    disconnected @9 :Disconnected;
    disconnectInjected @10 :Void;
    reconnected @11 :Connected;
    reconnectFailed @12 :Failure;
    execPoll @13 :ExecPoll;
    execPollError @14 :Failure;
    ptyCycle @15 :PtyCycle;
    ptyError @16 :Failure;
    authFailed @17 :Failure;         # F4: never retried
    manualReconnect @18 :Failure;    # retries exhausted: needs a user
    stopped @19 :Void;               # clean close after a shutdown command
    churnStats @22 :ChurnStats;
    churnConnection @23 :ChurnConnection;
    transferRound @24 :TransferRound;
    transferCorrupt @25 :TransferCorrupt;
    transferStall @26 :TransferStall;
    transferError @27 :Failure;
    jobResult @28 :JobResult;
    jobConnectionClosed @29 :JobConnectionClosed;
    ptyStats @30 :PtyStats;
    execPollStats @31 :ExecPollStats;
    heartbeat @32 :Heartbeat;        # never logged: the supervisor's watchdog eats it
    ptyFlood @33 :PtyFlood;
  }
  tokenGrantedNs @20 :Int64;  # connect attempts: CLOCK_REALTIME of the token grant (0: none)
  backoffMs @21 :Int64 = -1;  # connect attempts: the jitter waited before it
}
