// The transfer workload's pure parts: SHA-256, the upload's data, the
// remote checksum found in noisy output, the command templates and the
// spec from the wire (session_agent/workloads/transfer*.h).
#include <capnp/message.h>
#include <gtest/gtest.h>

#include <array>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "session_agent/workloads/transfer.h"
#include "session_agent/workloads/transfer_data.h"

using namespace sshsoak;
using namespace sshsoak::agent;

namespace {

const std::string HASH_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string HASH_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string scan(const std::vector<std::string>& pieces) {
  HexWordScanner s;
  for (const auto& p : pieces) s.feed(p);
  return s.last();
}

}  // namespace

TEST(Sha256, MatchesTheStandardVectorsAndStartsOverAfterEachDigest) {
  Sha256 sha;
  EXPECT_EQ(sha.finishHex(), HASH_EMPTY);
  sha.update("abc", 3);
  EXPECT_EQ(sha.finishHex(), HASH_ABC);
  // Fed in pieces, as a round feeds it one write at a time.
  sha.update("a", 1);
  sha.update("", 0);
  sha.update("bc", 2);
  EXPECT_EQ(sha.finishHex(), HASH_ABC);
  std::string million(1'000'000, 'a');
  for (size_t i = 0; i < million.size(); i += 4096) sha.update(million.data() + i, std::min<size_t>(4096, million.size() - i));
  EXPECT_EQ(sha.finishHex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(PseudoRandomBytes, SameSeedSameBytesInAnyWriteSizeOtherSeedOtherBytes) {
  std::vector<char> whole(1 << 16), pieces(1 << 16), other(1 << 16);
  PseudoRandomBytes a(42), b(42), c(43);
  a.fill(whole.data(), whole.size());
  // Writes of any multiple of 8 bytes continue the same stream.
  for (size_t at = 0, n = 8; at < pieces.size(); at += n, n = std::min<size_t>(n * 3, pieces.size() - at)) {
    b.fill(pieces.data() + at, std::min(n, pieces.size() - at));
  }
  c.fill(other.data(), other.size());
  EXPECT_EQ(whole, pieces);
  EXPECT_NE(whole, other);
}

TEST(PseudoRandomBytes, LooksUniformAndFillsOddSizesExactly) {
  std::vector<unsigned char> data(1 << 20);
  PseudoRandomBytes gen(mixSeed(7));
  gen.fill(reinterpret_cast<char*>(data.data()), data.size());
  std::array<size_t, 256> counts{};
  for (unsigned char byte : data) ++counts[byte];
  // 4096 expected per value; a real generator stays within a few percent,
  // a broken one (zeros, a short cycle, one byte of eight) does not.
  for (size_t v = 0; v < 256; ++v) {
    EXPECT_GT(counts[v], 3700u) << v;
    EXPECT_LT(counts[v], 4500u) << v;
  }
  // A last write that is not a multiple of 8 is written exactly, no more.
  std::vector<char> odd(13, '\x5a');
  gen.fill(odd.data(), 11);
  EXPECT_EQ(odd[11], '\x5a');
  EXPECT_EQ(odd[12], '\x5a');
}

TEST(PseudoRandomBytes, RoundSeedsDiffer) {
  std::set<uint64_t> seeds;
  for (uint64_t round = 1; round <= 1000; ++round) seeds.insert(mixSeed(12345 + round));
  EXPECT_EQ(seeds.size(), 1000u);
}

TEST(HexWordScanner, TakesSha256sumsOutputWhateverTheNoiseAround) {
  EXPECT_EQ(scan({HASH_ABC + "  -\n"}), HASH_ABC);
  // pyenv's complaint before, a trailing line after.
  EXPECT_EQ(scan({"pyenv: cannot rehash: /root/.pyenv/shims isn't writable\n", HASH_ABC, "  -\n", "bye\n"}),
            HASH_ABC);
  // The stream's end ends the word: a checksum printed without a newline.
  EXPECT_EQ(scan({"sha256=" + HASH_ABC}), HASH_ABC);
  // Upper case is read as the same digest.
  std::string upper = HASH_ABC;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(scan({upper + "\n"}), HASH_ABC);
}

TEST(HexWordScanner, TheLastWordWinsAndPiecesOfAnySizeGiveTheSame) {
  std::string text = "first " + HASH_EMPTY + "\nthen " + HASH_ABC + "  -\n";
  EXPECT_EQ(scan({text}), HASH_ABC);
  HexWordScanner bytewise;
  for (char c : text) bytewise.feed(&c, 1);
  EXPECT_EQ(bytewise.last(), HASH_ABC);
}

TEST(HexWordScanner, RefusesWhatIsNotExactlyOneSha256Word) {
  EXPECT_EQ(scan({""}), "");
  EXPECT_EQ(scan({"no checksum here\n"}), "");
  EXPECT_EQ(scan({HASH_ABC.substr(1) + "\n"}), "");            // 63 digits
  EXPECT_EQ(scan({HASH_ABC + "0\n"}), "");                     // 65 digits
  EXPECT_EQ(scan({"x" + HASH_ABC + "\n"}), "");                // part of an identifier
  EXPECT_EQ(scan({HASH_ABC.substr(0, 63) + "g\n"}), "");       // not all hex
  EXPECT_EQ(scan({HASH_ABC + "_tail\n"}), "");
  // A refused word after a good one does not erase it.
  EXPECT_EQ(scan({HASH_ABC + "\n" + HASH_EMPTY + "0\n"}), HASH_ABC);
}

TEST(ExpandBytes, ReplacesEveryPlaceholder) {
  EXPECT_EQ(expandBytes("head -c {bytes} /dev/zero", 64000000), "head -c 64000000 /dev/zero");
  EXPECT_EQ(expandBytes("a{bytes}{bytes}b {bytes}", 7), "a77b 7");
  EXPECT_EQ(expandBytes("sha256sum", 7), "sha256sum");
  EXPECT_EQ(expandBytes("{bytes", 7), "{bytes");
}

namespace {

wire::TransferWorkloadSpec::Builder defaultSpec(capnp::MallocMessageBuilder& message) {
  auto spec = message.initRoot<wire::TransferWorkloadSpec>();
  spec.setUp(true);
  spec.setDown(true);
  spec.setBytesPerRound(5'000'000);
  spec.setUpCommand("sha256sum # {bytes}");
  spec.setDownCommand("head -c {bytes} /dev/zero");
  spec.setWindowBytes(2 << 20);
  spec.setWriteBytes(256 << 10);
  spec.setStallMs(2000);
  spec.setPauseMs(0);
  return spec;
}

}  // namespace

TEST(TransferSpec, FromWireTemplatesTheCommandsAndFloorsItsTimes) {
  capnp::MallocMessageBuilder message;
  auto wire = defaultSpec(message);
  wire.setStallMs(1);
  wire.setWindowBytes(100);
  auto s = TransferSpec::fromWire(wire.asReader());
  EXPECT_EQ(s.upCommand, "sha256sum # 5000000");
  EXPECT_EQ(s.downCommand, "head -c 5000000 /dev/zero");
  EXPECT_EQ(s.stallMs, MIN_WORKLOAD_INTERVAL_MS);
  EXPECT_EQ(s.windowBytes, TransferSpec::MIN_WINDOW_BYTES);
  EXPECT_EQ(s.writeBytes, 256u << 10);
}

TEST(TransferSpec, RefusesASpecItCannotRun) {
  {
    capnp::MallocMessageBuilder message;
    auto wire = defaultSpec(message);
    wire.setUp(false);
    wire.setDown(false);
    EXPECT_THROW(TransferSpec::fromWire(wire.asReader()), std::invalid_argument);
  }
  {
    capnp::MallocMessageBuilder message;
    auto wire = defaultSpec(message);
    wire.setBytesPerRound(0);
    EXPECT_THROW(TransferSpec::fromWire(wire.asReader()), std::invalid_argument);
  }
  {
    capnp::MallocMessageBuilder message;
    auto wire = defaultSpec(message);
    wire.setWriteBytes(0);
    EXPECT_THROW(TransferSpec::fromWire(wire.asReader()), std::invalid_argument);
  }
  {
    capnp::MallocMessageBuilder message;
    auto wire = defaultSpec(message);
    wire.setDown(false);
    wire.setUpCommand("");
    EXPECT_THROW(TransferSpec::fromWire(wire.asReader()), std::invalid_argument);
  }
}

TEST(TransferSpec, DirectionsAlternateWhenBothAreAskedFor) {
  capnp::MallocMessageBuilder message;
  auto wire = defaultSpec(message);
  auto both = TransferSpec::fromWire(wire.asReader());
  using D = wire::TransferDirection;
  EXPECT_EQ(both.directionOf(1), D::UP);
  EXPECT_EQ(both.directionOf(2), D::DOWN);
  EXPECT_EQ(both.directionOf(3), D::UP);
  wire.setUp(false);
  auto down = TransferSpec::fromWire(wire.asReader());
  EXPECT_EQ(down.directionOf(1), D::DOWN);
  EXPECT_EQ(down.directionOf(2), D::DOWN);
}

TEST(TransferSpec, ARoundIsGivenUpAfterTheStepTimeoutOrTenStallsWhicheverIsLonger) {
  capnp::MallocMessageBuilder message;
  auto s = TransferSpec::fromWire(defaultSpec(message).asReader());  // stall 2 s
  EXPECT_EQ(s.giveUpMs(15'000), 20'000u);
  EXPECT_EQ(s.giveUpMs(30'000), 30'000u);
  EXPECT_EQ(s.errorPauseMs(), TransferSpec::ERROR_PAUSE_MS);
}
