// The agent's heartbeat (event_sink.h): sent only after heartbeatMs with no
// other event, carrying the phase, and it tells every wait when it is due.
#include "session_agent/event_sink.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <vector>

#include "shared/fd.h"

using namespace sshsoak;
using namespace sshsoak::agent;

namespace {

std::vector<kj::Array<capnp::word>> drain(int fd, FrameReader& reader) {
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf);
  if (n > 0) reader.feed(buf, static_cast<size_t>(n));
  std::vector<kj::Array<capnp::word>> out;
  while (auto words = reader.next()) out.push_back(std::move(*words));
  return out;
}

}  // namespace

TEST(Heartbeat, OnlyAfterASilentIntervalAndWithThePhase) {
  Pipe p = makePipe();
  setNonBlocking(p.readEnd.get());
  FrameReader reader;
  EventSink sink(p.writeEnd.get(), 7, 1000);
  int64_t t0 = monoMs();
  // Not due yet: nothing sent, and the wait is told when it will be.
  int64_t due = sink.maybeHeartbeat(t0);
  EXPECT_GE(due, t0 + 900);
  EXPECT_LE(due, t0 + 1000);
  EXPECT_TRUE(drain(p.readEnd.get(), reader).empty());
  // The process's waits reach the same sink.
  EXPECT_EQ(heartbeatDue(t0), due);
  EXPECT_LE(waitTimeoutMs(t0, t0 + 60'000), 1000);

  sink.setPhase("backoff");
  sink.maybeHeartbeat(due);
  auto frames = drain(p.readEnd.get(), reader);
  ASSERT_EQ(frames.size(), 1u);
  capnp::FlatArrayMessageReader message(frames[0]);
  auto e = message.getRoot<wire::Event>();
  ASSERT_EQ(e.which(), wire::Event::HEARTBEAT);
  EXPECT_EQ(e.getSessionId(), 7u);
  EXPECT_EQ(e.getHeartbeat().getSeq(), 1u);
  EXPECT_EQ(std::string(e.getHeartbeat().getPhase().cStr()), "backoff");

  // Any other event is proof of life: no heartbeat within the next interval.
  sink.emit([](wire::Event::Builder b) { b.setStopped(); });
  ASSERT_EQ(drain(p.readEnd.get(), reader).size(), 1u);
  int64_t afterEmit = monoMs();
  EXPECT_GE(sink.maybeHeartbeat(afterEmit + 500), afterEmit + 900);
  EXPECT_TRUE(drain(p.readEnd.get(), reader).empty());
}

TEST(Heartbeat, OffSendsNothingAndNeverBoundsAWait) {
  Pipe p = makePipe();
  setNonBlocking(p.readEnd.get());
  FrameReader reader;
  EventSink sink(p.writeEnd.get(), 1, 0);
  EXPECT_EQ(sink.maybeHeartbeat(monoMs() + 1'000'000), EventSink::NEVER_MS);
  EXPECT_EQ(heartbeatDue(monoMs()), EventSink::NEVER_MS);
  EXPECT_TRUE(drain(p.readEnd.get(), reader).empty());
}
