// What the server said before the encryption starts, seen byte by byte as
// SshConnection's recv hook reads it: the lines before its banner, the banner
// and its KEXINIT packet (all plaintext). Bounded: it keeps at most one banner
// line and one KEXINIT packet, and says "flooded" once a peer has sent more
// than any SSH server needs before its key-exchange offer. From it the
// connection tells a key-exchange mismatch (which list, what each side
// offered) and a server that closed right after its banner (MaxStartups)
// apart from other failures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sshsoak::agent {

// The name-lists of a KEXINIT (RFC 4253 7.1), in wire order.
struct KexOffer {
  std::vector<std::string> kex, hostKey, encCs, encSc, macCs, macSc;
};

// Parses a KEXINIT packet: uint32 packet_length, byte padding_length, then
// the payload (byte 20, 16-byte cookie, the name-lists). nullopt if it is
// not one.
std::optional<KexOffer> parseKexinitPacket(const uint8_t* data, size_t size);

// Which list has no algorithm in common, first one only, as a message naming
// it, what we offer and what the server offered; nullopt if every list has a
// common name. MACs are not compared for a cipher with its own integrity
// (chacha20-poly1305, AES-GCM) chosen from both lists.
std::optional<std::string> describeMismatch(const KexOffer& ours, const KexOffer& theirs);

class ServerHello {
 public:
  // Most bytes a server may send before its KEXINIT is complete: RFC 4253
  // allows lines before the banner, OpenSSH's client stops after 1024 of them;
  // a KEXINIT is at most 35000 bytes.
  static constexpr size_t MAX_PRE_BANNER = 64 * 1024;
  static constexpr size_t MAX_KEXINIT = 35000;
  // Bytes after the banner before the KEXINIT is complete (it may follow
  // IGNORE or DEBUG packets).
  static constexpr size_t MAX_BEFORE_KEXINIT = 64 * 1024;

  void feed(const uint8_t* data, size_t size);

  bool bannerSeen() const { return bannerSeen_; }
  const std::string& banner() const { return banner_; }
  size_t preBannerBytes() const { return preBanner_; }
  // The last complete line before the banner (at most 255 bytes, line end
  // cut): what a server that is not speaking SSH, or sshd refusing
  // ("Exceeded MaxStartups"), said.
  const std::string& lastLine() const { return lastLine_; }
  // Bytes after the banner line (KEXINIT or anything else).
  size_t bytesAfterBanner() const { return afterBanner_; }
  // A KEXINIT packet (message 20) is complete; packets before it are skipped.
  bool kexinitComplete() const { return kexinitDone_; }
  const std::optional<KexOffer>& offer() const { return offer_; }
  // More than MAX_PRE_BANNER before the banner, a packet length over
  // MAX_KEXINIT, or more than MAX_BEFORE_KEXINIT after the banner without a
  // complete KEXINIT.
  bool flooded() const { return flooded_; }

 private:
  bool bannerSeen_ = false;
  bool kexinitDone_ = false;
  bool flooded_ = false;
  size_t preBanner_ = 0;
  size_t afterBanner_ = 0;
  std::string line_;    // the current line before the banner (at most 255 bytes kept)
  std::string banner_;
  std::string lastLine_;
  std::vector<uint8_t> packet_;
  std::optional<KexOffer> offer_;
};

}  // namespace sshsoak::agent
