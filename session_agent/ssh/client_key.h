// The client's key, read and parsed once, for callers that authenticate
// again and again (churn). libssh2 1.10 re-reads the key at every
// authentication, and with OpenSSL 3 it first runs every PEM decoder over
// it and fails before trying OpenSSH's format: about a quarter of a churn
// connection's client CPU. OpenSSH's own format ("-----BEGIN OPENSSH
// PRIVATE KEY-----", ssh-keygen's default since 7.8 and the only one for
// ed25519) carries the public key unencrypted in its header, and an
// unencrypted ed25519 key is just its 32-byte seed: we sign with it
// ourselves (libssh2_userauth_publickey's callback). Any other key keeps
// libssh2's own path, from memory (and with the public half given, when the
// format carries it).
#pragma once

#include <libssh2.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

typedef struct evp_pkey_st EVP_PKEY;

namespace sshsoak::agent {

class ClientKey {
 public:
  // From the text of a private key file; never fails: a key this cannot
  // read is kept as text for libssh2.
  static std::shared_ptr<const ClientKey> load(std::string fileText);
  ~ClientKey();
  ClientKey(const ClientKey&) = delete;
  ClientKey& operator=(const ClientKey&) = delete;

  const std::string& fileText() const { return fileText_; }
  // "TYPE BASE64" (authorized_keys' format, libssh2's public-key data);
  // empty if the file's format does not carry it.
  const std::string& publicKeyLine() const { return publicKeyLine_; }
  // We sign ourselves (an unencrypted ed25519 key in OpenSSH's format).
  bool canSign() const { return signingKey_ != nullptr; }
  // The public key blob (RFC 4253 6.6) for libssh2_userauth_publickey.
  const std::string& publicBlob() const { return publicBlob_; }
  // What OpenSSH's format says of the key before any decryption (the
  // supervisor's check at start, supervisor/key_check.cpp): the key type
  // ("ssh-ed25519", "ssh-rsa", ...; empty if the file is not in that
  // format) and whether its private half is encrypted (a passphrase needed).
  const std::string& openSshKeyType() const { return openSshKeyType_; }
  bool openSshEncrypted() const { return openSshEncrypted_; }
  // libssh2's sign callback; *abstract is the ClientKey.
  static LIBSSH2_USERAUTH_PUBLICKEY_SIGN_FUNC(signCallback);

 private:
  ClientKey() = default;
  std::string fileText_;
  std::string publicBlob_;
  std::string publicKeyLine_;
  std::string openSshKeyType_;
  bool openSshEncrypted_ = false;
  EVP_PKEY* signingKey_ = nullptr;
};

// RFC 4648 base64 (exposed for its test).
std::optional<std::string> base64Decode(std::string_view text);  // whitespace skipped
std::string base64Encode(std::string_view bytes);

}  // namespace sshsoak::agent
