#include "session_agent/ssh/client_key.h"

#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace sshsoak::agent {

namespace {

constexpr std::string_view ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
constexpr std::string_view END = "-----END OPENSSH PRIVATE KEY-----";
constexpr std::string_view MAGIC{"openssh-key-v1\0", 15};

int sextet(char c) {
  auto at = ALPHABET.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

// SSH wire reading (RFC 4251): big-endian uint32, and strings prefixed by one.
struct Reader {
  std::string_view rest;
  bool u32(uint32_t& out) {
    if (rest.size() < 4) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) out = (out << 8) | static_cast<uint8_t>(rest[i]);
    rest.remove_prefix(4);
    return true;
  }
  bool string(std::string_view& out) {
    uint32_t n = 0;
    if (!u32(n) || rest.size() < n) return false;
    out = rest.substr(0, n);
    rest.remove_prefix(n);
    return true;
  }
};

}  // namespace

std::optional<std::string> base64Decode(std::string_view text) {
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  bool padded = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padded = true;
      continue;
    }
    int v = sextet(c);
    if (v < 0 || padded) return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>(bits >> 16));
      out.push_back(static_cast<char>(bits >> 8));
      out.push_back(static_cast<char>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 1) return std::nullopt;
  if (count == 2) out.push_back(static_cast<char>(bits >> 4));
  if (count == 3) {
    out.push_back(static_cast<char>(bits >> 10));
    out.push_back(static_cast<char>(bits >> 2));
  }
  return out;
}

std::string base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t chunk = static_cast<uint32_t>(static_cast<uint8_t>(bytes[i])) << 16;
    if (i + 1 < bytes.size()) chunk |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) chunk |= static_cast<uint8_t>(bytes[i + 2]);
    out.push_back(ALPHABET[(chunk >> 18) & 63]);
    out.push_back(ALPHABET[(chunk >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? ALPHABET[(chunk >> 6) & 63] : '=');
    out.push_back(i + 2 < bytes.size() ? ALPHABET[chunk & 63] : '=');
  }
  return out;
}

std::shared_ptr<const ClientKey> ClientKey::load(std::string fileText) {
  std::shared_ptr<ClientKey> key(new ClientKey());
  key->fileText_ = std::move(fileText);
  std::string_view file = key->fileText_;
  auto begin = file.find(BEGIN);
  if (begin == std::string_view::npos) return key;
  auto bodyStart = begin + BEGIN.size();
  auto end = file.find(END, bodyStart);
  if (end == std::string_view::npos) return key;
  auto raw = base64Decode(file.substr(bodyStart, end - bodyStart));
  if (!raw || raw->compare(0, MAGIC.size(), MAGIC) != 0) return key;
  // PROTOCOL.key: magic, cipher name, KDF name, KDF options, number of
  // keys, the public keys, then the private section (plain if cipher "none").
  Reader r{std::string_view(*raw).substr(MAGIC.size())};
  std::string_view cipher, kdf, kdfOptions, blob, secret;
  uint32_t keys = 0;
  if (!r.string(cipher) || !r.string(kdf) || !r.string(kdfOptions) || !r.u32(keys) || keys != 1 || !r.string(blob) ||
      !r.string(secret)) {
    return key;
  }
  Reader b{blob};
  std::string_view type, publicBytes;
  if (!b.string(type) || type.empty()) return key;
  key->publicBlob_ = blob;
  key->publicKeyLine_ = std::string(type) + " " + base64Encode(blob);
  key->openSshKeyType_ = type;
  key->openSshEncrypted_ = cipher != "none";
  if (cipher != "none" || type != "ssh-ed25519" || !b.string(publicBytes) || publicBytes.size() != 32) return key;
  // Two equal check words, then the key again: type, public (32 bytes),
  // private (seed and public, 64 bytes), comment.
  Reader p{secret};
  uint32_t check1 = 0, check2 = 0;
  std::string_view privType, privPublic, privBytes;
  if (!p.u32(check1) || !p.u32(check2) || check1 != check2 || !p.string(privType) || privType != type ||
      !p.string(privPublic) || privPublic != publicBytes || !p.string(privBytes) || privBytes.size() != 64 ||
      privBytes.substr(32) != publicBytes) {
    return key;
  }
  key->signingKey_ = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                                  reinterpret_cast<const unsigned char*>(privBytes.data()), 32);
  return key;
}

ClientKey::~ClientKey() { EVP_PKEY_free(signingKey_); }

LIBSSH2_USERAUTH_PUBLICKEY_SIGN_FUNC(ClientKey::signCallback) {
  (void)session;
  const auto* key = static_cast<const ClientKey*>(*abstract);
  if (key == nullptr || key->signingKey_ == nullptr) return -1;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return -1;
  // Ed25519 signs the message itself (no digest), 64 bytes. libssh2 frees
  // *sig with its allocator: malloc, as the session is made with none.
  size_t len = 64;
  auto* out = static_cast<unsigned char*>(std::malloc(len));
  int ok = out != nullptr && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key->signingKey_) == 1 &&
           EVP_DigestSign(ctx, out, &len, data, data_len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) {
    std::free(out);
    return -1;
  }
  *sig = out;
  *sig_len = len;
  return 0;
}

}  // namespace sshsoak::agent
