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
}

# One workload of a session (session_agent/workloads/). Each member's spec is
# read by session_agent/workloads/registry.cpp; a new workload adds a member.
struct WorkloadSpec {
  union {
    pty @0 :PtyWorkloadSpec;
    execPoll @1 :ExecPollWorkloadSpec;
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

struct Command {
  union {
    shutdown @0 :Void;           # close the session cleanly, then exit 0
    dropConnection @1 :Void;     # fault injection: shut the socket now
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
}

struct Disconnected {
  cause @0 :DisconnectCause;
  silentMs @1 :UInt32;      # how long nothing had been received
  message @2 :Text;
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
  }
  tokenGrantedNs @20 :Int64;  # connect attempts: CLOCK_REALTIME of the token grant (0: none)
  backoffMs @21 :Int64 = -1;  # connect attempts: the jitter waited before it
}
