#include "shared/frame.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "events.capnp.h"
#include "shared/fd.h"

using namespace sshsoak;

namespace {

kj::Array<capnp::word> makeEvent(uint32_t session, const std::string& detail) {
  capnp::MallocMessageBuilder m;
  auto e = m.initRoot<wire::Event>();
  e.setSessionId(session);
  e.setDetail(detail);
  e.initExecPoll().setRttMs(session * 10);
  return capnp::messageToFlatArray(m);
}

}  // namespace

TEST(FrameReader, ReassemblesMessagesFedByteByByte) {
  std::vector<unsigned char> stream;
  for (uint32_t i = 0; i < 5; ++i) {
    auto w = makeEvent(i, std::string(i * 100, 'x'));
    auto b = w.asBytes();
    stream.insert(stream.end(), b.begin(), b.end());
  }
  FrameReader reader;
  std::vector<uint32_t> seen;
  for (unsigned char c : stream) {
    reader.feed(&c, 1);
    while (auto words = reader.next()) {
      capnp::FlatArrayMessageReader r(*words);
      auto e = r.getRoot<wire::Event>();
      EXPECT_EQ(e.getExecPoll().getRttMs(), e.getSessionId() * 10);
      EXPECT_EQ(e.getDetail().size(), e.getSessionId() * 100);
      seen.push_back(e.getSessionId());
    }
  }
  EXPECT_EQ(seen, (std::vector<uint32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(FrameReader, MultiSegmentMessages) {
  // A small first segment forces Cap'n Proto to add segments.
  capnp::MallocMessageBuilder m(8, capnp::AllocationStrategy::FIXED_SIZE);
  auto e = m.initRoot<wire::Event>();
  e.setDetail(std::string(5000, 'y'));
  e.setSessionId(7);
  auto words = capnp::messageToFlatArray(m);
  ASSERT_GT(m.getSegmentsForOutput().size(), 1u);
  FrameReader reader;
  auto b = words.asBytes();
  reader.feed(b.begin(), b.size());
  auto got = reader.next();
  ASSERT_TRUE(got.has_value());
  capnp::FlatArrayMessageReader r(*got);
  EXPECT_EQ(r.getRoot<wire::Event>().getSessionId(), 7u);
}

TEST(FrameReader, CorruptHeaderIsAnErrorNotAnAllocation) {
  FrameReader reader;
  unsigned char junk[16] = {0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0};
  reader.feed(junk, sizeof junk);
  EXPECT_THROW(reader.next(), FrameError);

  FrameReader huge;
  unsigned char big[8] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f};  // one segment of 2^28 words
  huge.feed(big, sizeof big);
  EXPECT_THROW(huge.next(), FrameError);
}

TEST(FrameReader, TruncatedStreamWaitsForMore) {
  auto w = makeEvent(3, "partial");
  auto b = w.asBytes();
  FrameReader reader;
  reader.feed(b.begin(), b.size() - 1);
  EXPECT_FALSE(reader.next().has_value());
  reader.feed(b.end() - 1, 1);
  EXPECT_TRUE(reader.next().has_value());
}

TEST(WriteFrame, RoundTripsThroughARealPipe) {
  Pipe p = makePipe();
  capnp::MallocMessageBuilder m;
  m.initRoot<wire::Event>().setSessionId(42);
  ASSERT_TRUE(writeFrame(p.writeEnd.get(), m));
  p.writeEnd.reset();
  FrameReader reader;
  char buf[256];
  ssize_t n;
  while ((n = ::read(p.readEnd.get(), buf, sizeof buf)) > 0) reader.feed(buf, static_cast<size_t>(n));
  auto got = reader.next();
  ASSERT_TRUE(got.has_value());
  capnp::FlatArrayMessageReader r(*got);
  EXPECT_EQ(r.getRoot<wire::Event>().getSessionId(), 42u);
}

TEST(WriteFrame, ReaderGoneIsFalseNotACrash) {
  ::signal(SIGPIPE, SIG_IGN);
  Pipe p = makePipe();
  p.readEnd.reset();
  capnp::MallocMessageBuilder m;
  m.initRoot<wire::Event>();
  EXPECT_FALSE(writeFrame(p.writeEnd.get(), m));
}
