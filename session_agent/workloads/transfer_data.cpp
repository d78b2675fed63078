#include "session_agent/workloads/transfer_data.h"

#include <openssl/evp.h>
#include <time.h>

#include <cstring>
#include <stdexcept>

namespace sshsoak::agent {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr) throw std::runtime_error("EVP_MD_CTX_new failed");
  restart();
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::restart() {
  if (EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) throw std::runtime_error("EVP_DigestInit_ex(sha256) failed");
}

void Sha256::update(const void* data, size_t n) {
  if (n > 0 && EVP_DigestUpdate(ctx_, data, n) != 1) throw std::runtime_error("EVP_DigestUpdate failed");
}

std::string Sha256::finishHex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx_, digest, &length) != 1) throw std::runtime_error("EVP_DigestFinal_ex failed");
  static constexpr char HEX[] = "0123456789abcdef";
  std::string out(size_t{length} * 2, '0');
  for (unsigned i = 0; i < length; ++i) {
    out[2 * i] = HEX[digest[i] >> 4];
    out[2 * i + 1] = HEX[digest[i] & 0xf];
  }
  restart();
  return out;
}

uint64_t mixSeed(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

PseudoRandomBytes::PseudoRandomBytes(uint64_t seed) {
  // splitmix64 fills the state, as xoshiro's authors advise: never all zero.
  for (auto& s : s_) {
    seed += 0x9e3779b97f4a7c15ull;
    s = mixSeed(seed);
  }
}

uint64_t PseudoRandomBytes::next() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  uint64_t result = rotl(s_[1] * 5, 7) * 9;
  uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

void PseudoRandomBytes::fill(char* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = next();
    std::memcpy(out + i, &v, 8);
  }
  if (i < n) {
    uint64_t v = next();
    std::memcpy(out + i, &v, n - i);
  }
}

namespace {

bool isWordChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

bool isHexDigit(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

void HexWordScanner::feed(const char* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    char c = data[i];
    if (!isWordChar(c)) {
      endWord();
      continue;
    }
    if (length_ == 0) allHex_ = true;
    if (!isHexDigit(c)) allHex_ = false;
    if (allHex_ && length_ < DIGITS) word_[length_] = (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
    ++length_;
  }
}

void HexWordScanner::endWord() {
  if (length_ == DIGITS && allHex_) last_.assign(word_, DIGITS);
  length_ = 0;
}

std::string HexWordScanner::last() const {
  if (length_ == DIGITS && allHex_) return std::string(word_, DIGITS);
  return last_;
}

std::string expandBytes(std::string_view command, uint64_t bytes) {
  static constexpr std::string_view KEY = "{bytes}";
  std::string out;
  std::string value = std::to_string(bytes);
  size_t from = 0;
  for (size_t at; (at = command.find(KEY, from)) != std::string_view::npos; from = at + KEY.size()) {
    out.append(command.substr(from, at - from));
    out.append(value);
  }
  out.append(command.substr(from));
  return out;
}

}  // namespace sshsoak::agent
