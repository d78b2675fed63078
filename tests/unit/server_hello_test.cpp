// The server's plaintext greeting (banner, KEXINIT) as SshConnection's recv
// hook sees it, and what a failed key exchange is reported as.
#include "session_agent/ssh/server_hello.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "session_agent/ssh/connection.h"

using namespace sshsoak::agent;

namespace {

void putString(std::string& out, const std::string& s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((n >> shift) & 0xff);
  out += s;
}

// A KEXINIT packet as a server sends it before encryption.
std::string kexinitPacket(const std::vector<std::string>& lists) {
  std::string payload(1, static_cast<char>(20));
  payload += std::string(16, 'c');
  for (const auto& l : lists) putString(payload, l);
  putString(payload, "");  // languages
  putString(payload, "");
  payload += std::string(5, '\0');  // first_kex_packet_follows, reserved
  uint8_t padding = static_cast<uint8_t>(8 - (payload.size() + 5) % 8 + 4);
  std::string packet;
  putString(packet, std::string(1, static_cast<char>(padding)) + payload + std::string(padding, '\0'));
  return packet;
}

const std::vector<std::string> TINYSSH = {"curve25519-sha256,curve25519-sha256@libssh.org", "ssh-ed25519",
                                          "chacha20-poly1305@openssh.com", "chacha20-poly1305@openssh.com",
                                          "hmac-sha2-256", "hmac-sha2-256"};

KexOffer libssh2Like() {
  return KexOffer{{"curve25519-sha256", "ecdh-sha2-nistp256"}, {"ssh-ed25519", "rsa-sha2-256"},
                  {"aes128-ctr", "aes256-ctr"}, {"aes128-ctr", "aes256-ctr"},
                  {"hmac-sha2-256", "hmac-sha1"}, {"hmac-sha2-256", "hmac-sha1"}};
}

void feed(ServerHello& h, const std::string& bytes) {
  h.feed(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

TEST(ServerHello, ParsesBannerAndKexinitFedAByteAtATime) {
  ServerHello h;
  std::string stream = "a notice line\r\nSSH-2.0-tinysshd\r\n" + kexinitPacket(TINYSSH) + "trailing";
  for (char c : stream) feed(h, std::string(1, c));
  EXPECT_TRUE(h.bannerSeen());
  EXPECT_EQ(h.banner(), "SSH-2.0-tinysshd");
  EXPECT_EQ(h.lastLine(), "a notice line");
  ASSERT_TRUE(h.kexinitComplete());
  ASSERT_TRUE(h.offer());
  EXPECT_EQ(h.offer()->encCs, std::vector<std::string>{"chacha20-poly1305@openssh.com"});
  EXPECT_EQ(h.offer()->kex.size(), 2u);
  EXPECT_FALSE(h.flooded());
}

TEST(ServerHello, ParsesKexinitInOneRead) {
  ServerHello h;
  feed(h, "SSH-2.0-x\r\n" + kexinitPacket(TINYSSH));
  ASSERT_TRUE(h.offer());
  EXPECT_EQ(h.offer()->hostKey, std::vector<std::string>{"ssh-ed25519"});
}

TEST(ServerHello, LinesWithoutBannerAreAFloodPastTheBound) {
  ServerHello h;
  std::string line(100, 'x');
  line += "\n";
  size_t fed = 0;
  while (!h.flooded() && fed < 10 * ServerHello::MAX_PRE_BANNER) {
    feed(h, line);
    fed += line.size();
  }
  EXPECT_TRUE(h.flooded());
  EXPECT_LE(fed, ServerHello::MAX_PRE_BANNER + line.size());
  EXPECT_FALSE(h.bannerSeen());
}

TEST(ServerHello, AHugePacketLengthAfterTheBannerIsAFlood) {
  ServerHello h;
  feed(h, "SSH-2.0-x\r\n\x7f\xff\xff\xff garbage");
  EXPECT_TRUE(h.flooded());
  EXPECT_FALSE(h.offer());
}

// A length near 2^32 once wrapped past the flood check (length + 4 in 32
// bits): the rest of the buffer then passed for a whole KEXINIT, and its
// parse read far past the buffer.
TEST(ServerHello, APacketLengthThatWouldWrapIsAFloodNotAKexinit) {
  for (uint32_t len : {0xfffffffcu, 0xfffffffdu, 0xfffffffeu, 0xffffffffu}) {
    ServerHello h;
    std::string packet = {static_cast<char>(len >> 24), static_cast<char>(len >> 16), static_cast<char>(len >> 8),
                          static_cast<char>(len), '\x04', '\x14'};
    feed(h, "SSH-2.0-x\r\n" + packet + std::string(40, 'a'));
    EXPECT_TRUE(h.flooded()) << len;
    EXPECT_FALSE(h.kexinitComplete()) << len;
    EXPECT_FALSE(h.offer()) << len;
  }
  // And the parser on its own, given such a length, refuses it.
  std::string packet = std::string("\xff\xff\xff\xfc\x04\x14", 6) + std::string(64, 'a');
  EXPECT_FALSE(parseKexinitPacket(reinterpret_cast<const uint8_t*>(packet.data()), packet.size()));
}

TEST(ServerHello, GarbageOfPlausibleLengthIsNoOffer) {
  ServerHello h;
  std::string junk = std::string("\0\0\0\x10", 4) + std::string(16, 'z');
  feed(h, "SSH-2.0-x\r\n" + junk);
  EXPECT_FALSE(h.kexinitComplete());  // not message 20: skipped
  EXPECT_FALSE(h.offer());
  EXPECT_FALSE(h.flooded());
}

TEST(ServerHello, IgnorePacketsBeforeTheKexinitAreSkippedUpToABound) {
  std::string ignore("\0\0\0\x0c\x06\x02\0\0\0\0\0\0\0\0\0\0", 16);
  ServerHello h;
  feed(h, "SSH-2.0-x\r\n" + ignore + ignore + kexinitPacket(TINYSSH));
  ASSERT_TRUE(h.offer());
  EXPECT_FALSE(h.flooded());

  ServerHello endless;
  size_t fed = 0;
  feed(endless, "SSH-2.0-x\r\n");
  while (!endless.flooded() && fed < 10 * ServerHello::MAX_BEFORE_KEXINIT) {
    feed(endless, ignore);
    fed += ignore.size();
  }
  EXPECT_TRUE(endless.flooded());
  EXPECT_LE(fed, ServerHello::MAX_BEFORE_KEXINIT + ignore.size());
}

TEST(KexMismatch, NamesTheCipherListAndBothOffers) {
  auto theirs = parseKexinitPacket(reinterpret_cast<const uint8_t*>(kexinitPacket(TINYSSH).data()),
                                   kexinitPacket(TINYSSH).size());
  ASSERT_TRUE(theirs);
  auto m = describeMismatch(libssh2Like(), *theirs);
  ASSERT_TRUE(m);
  EXPECT_EQ(*m,
            "no common cipher (client to server): we offer aes128-ctr,aes256-ctr; the server offers "
            "chacha20-poly1305@openssh.com");
}

TEST(KexMismatch, KexListFirstThenHostKeyThenMac) {
  KexOffer theirs = libssh2Like();
  theirs.kex = {"sntrup761x25519-sha512@openssh.com"};
  EXPECT_NE(describeMismatch(libssh2Like(), theirs)->find("no common kex:"),
            std::string::npos);
  theirs = libssh2Like();
  theirs.hostKey = {"ssh-dss"};
  EXPECT_NE(describeMismatch(libssh2Like(), theirs)->find("no common hostkey:"), std::string::npos);
  theirs = libssh2Like();
  theirs.macSc = {"umac-128-etm@openssh.com"};
  EXPECT_NE(describeMismatch(libssh2Like(), theirs)->find("no common mac (server to client):"), std::string::npos);
  EXPECT_FALSE(describeMismatch(libssh2Like(), libssh2Like()));
}

TEST(KexMismatch, AnAeadCipherNeedsNoMac) {
  KexOffer ours = libssh2Like();
  ours.encCs.push_back("aes256-gcm@openssh.com");
  ours.encSc.push_back("aes256-gcm@openssh.com");
  KexOffer theirs = libssh2Like();
  theirs.encCs = theirs.encSc = {"aes256-gcm@openssh.com"};
  theirs.macCs = theirs.macSc = {"umac-128-etm@openssh.com"};
  EXPECT_FALSE(describeMismatch(ours, theirs));
}

// The MaxStartups hint only for a server that closed before or right after
// its banner, before any byte of a KEXINIT.
TEST(KexFailure, MaxStartupsHintOnlyForACloseRightAfterTheBanner) {
  const std::string hint = "MaxStartups";
  ServerHello none;
  SshError e = kexFailure(none, std::nullopt, true, "Failed getting banner", -13);
  EXPECT_EQ(e.category, sshsoak::wire::FailureCategory::PROTOCOL);
  EXPECT_NE(e.message.find(hint), std::string::npos);
  EXPECT_NE(e.message.find("before sending its SSH banner"), std::string::npos);

  ServerHello refused;
  feed(refused, "Exceeded MaxStartups\r\n");
  e = kexFailure(refused, std::nullopt, true, "Failed getting banner", -13);
  EXPECT_NE(e.message.find("saying \"Exceeded MaxStartups\""), std::string::npos) << e.message;

  ServerHello banner;
  feed(banner, "SSH-2.0-OpenSSH_9.2\r\n");
  e = kexFailure(banner, std::nullopt, true, "Unable to exchange encryption keys", -8);
  EXPECT_NE(e.message.find("right after its banner"), std::string::npos);

  ServerHello kexinit;
  feed(kexinit, "SSH-2.0-OpenSSH_9.2\r\n" + kexinitPacket(TINYSSH));
  e = kexFailure(kexinit, libssh2Like(), true, "Unable to exchange encryption keys", -8);
  EXPECT_EQ(e.category, sshsoak::wire::FailureCategory::ALGORITHMS);
  EXPECT_EQ(e.message.find(hint), std::string::npos);

  ServerHello agreed;
  feed(agreed, "SSH-2.0-OpenSSH_9.2\r\n");
  std::vector<std::string> common = {"curve25519-sha256", "ssh-ed25519", "aes128-ctr", "aes128-ctr",
                                     "hmac-sha1", "hmac-sha1"};
  feed(agreed, kexinitPacket(common));
  e = kexFailure(agreed, libssh2Like(), true, "Unable to exchange encryption keys", -8);
  EXPECT_EQ(e.category, sshsoak::wire::FailureCategory::PROTOCOL);
  EXPECT_EQ(e.message.find(hint), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("closed the connection"), std::string::npos);

  ServerHello partial;  // a reset in the middle of the KEXINIT
  feed(partial, "SSH-2.0-OpenSSH_9.2\r\n" + std::string("\0\0\x01", 3));
  e = kexFailure(partial, std::nullopt, true, "Failed getting packet", -13);
  EXPECT_EQ(e.message.find(hint), std::string::npos);
}
