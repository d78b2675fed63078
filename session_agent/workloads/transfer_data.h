// The pure parts of the transfer workload (transfer.h): the bytes an upload
// sends, the SHA-256 the agent computes of what it sent or received, the
// remote's checksum picked out of noisy output, the command templates.
// Nothing here touches a socket; tests/unit/transfer_test.cpp drives it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace sshsoak::agent {

// Incremental SHA-256 through OpenSSL's EVP interface (libcrypto, which
// libssh2 links already). With the CPU's SHA extensions it hashes at ~2 GB/s,
// well above what the cipher and MAC of the same bytes cost.
class Sha256 {
 public:
  Sha256();  // throws std::runtime_error if libcrypto refuses
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t n);
  // The digest of everything fed since the last finish, as 64 lowercase hex
  // digits (sha256sum's spelling); the hash then starts over.
  std::string finishHex();

 private:
  void restart();
  evp_md_ctx_st* ctx_ = nullptr;
};

// The upload's data: xoshiro256** (Blackman and Vigna), 8 bytes per step at
// well over 1 GB/s, seeded through splitmix64, so a round never holds more
// than the write it is sending and two rounds never send the same bytes.
// Not for secrets: for data that must not compress and must not repeat.
class PseudoRandomBytes {
 public:
  explicit PseudoRandomBytes(uint64_t seed);
  void fill(char* out, size_t n);

 private:
  uint64_t next();
  uint64_t s_[4];
};

// splitmix64: one seed per round from the workload's base seed.
uint64_t mixSeed(uint64_t x);

// Finds the last word of exactly 64 hex digits in a stream fed in pieces of
// any size: a SHA-256 as sha256sum prints it ("<hex>  -"), whatever login
// noise (pyenv, motd) comes before or after. A word is a run of
// [0-9A-Za-z_] between other characters; it counts only if it is 64 hex
// digits, so longer hex runs and identifiers are not taken for a checksum.
// Constant memory whatever the stream's length.
class HexWordScanner {
 public:
  static constexpr size_t DIGITS = 64;

  void feed(const char* data, size_t n);
  void feed(std::string_view text) { feed(text.data(), text.size()); }
  // The last such word, lowercase, the stream's end counting as the end of
  // a word; "" if there was none.
  std::string last() const;

 private:
  void endWord();

  std::string last_;
  char word_[DIGITS] = {};
  size_t length_ = 0;    // of the current word, counted past DIGITS
  bool allHex_ = false;  // the current word is hex digits so far
};

// The command with every "{bytes}" replaced by the round's size.
std::string expandBytes(std::string_view command, uint64_t bytes);

}  // namespace sshsoak::agent
