#include "supervisor/key_check.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#include <fcntl.h>
#include <libssh2.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string_view>

#include "session_agent/ssh/client_key.h"
#include "shared/fd.h"

namespace sshsoak {

namespace {

// A private key is a few kB; anything much larger is not one (and is not
// read whole into memory to find that out).
constexpr size_t MAX_KEY_BYTES = 1 << 20;

bool startsWith(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }
bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

std::string_view trimmedStart(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\r' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  return s;
}

// The first word of an OpenSSH public key line (id_ed25519.pub,
// authorized_keys): the text a user gives by mistake for the private key.
bool looksLikePublicKey(std::string_view text) {
  text = trimmedStart(text);
  for (std::string_view type : {"ssh-ed25519 ", "ssh-rsa ", "ssh-dss ", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-",
                                "---- BEGIN SSH2 PUBLIC KEY"}) {
    if (startsWith(text, type)) return true;
  }
  return false;
}

// libssh2's sends and receives on the probe session fail at once: the
// session has no socket, and nothing may go anywhere (a fresh session's
// socket is fd 0).
LIBSSH2_SEND_FUNC(refuseSend) {
  (void)socket, (void)buffer, (void)length, (void)flags, (void)abstract;
  return -EBADF;
}
LIBSSH2_RECV_FUNC(refuseRecv) {
  (void)socket, (void)buffer, (void)length, (void)flags, (void)abstract;
  return -EBADF;
}

// libssh2 1.10 has no offline key check. Its public-key authentication from
// memory, when given no public key, first derives one from the private key
// with the passphrase (the same loader the agents' authentication runs),
// and only then sends its request. On a session that cannot send, a key
// libssh2 can use therefore fails with SOCKET_SEND and any other key with
// the loader's error, before a byte is sent. "" when libssh2 can use it.
std::string libssh2LoadError(const std::string& text, const std::string& passphrase) {
  static std::once_flag init;
  std::call_once(init, [] { libssh2_init(0); });
  LIBSSH2_SESSION* session = libssh2_session_init();
  if (session == nullptr) return "libssh2 could not make a session (out of memory)";
  libssh2_session_callback_set(session, LIBSSH2_CALLBACK_SEND, reinterpret_cast<void*>(&refuseSend));
  libssh2_session_callback_set(session, LIBSSH2_CALLBACK_RECV, reinterpret_cast<void*>(&refuseRecv));
  libssh2_session_set_blocking(session, 1);
  // Never NULL: OpenSSL would then ask for an encrypted PEM key's
  // passphrase on the terminal. libssh2 1.10's ECDSA loader leaks a BIGNUM
  // (56 bytes, once per check: here once per run); LeakSanitizer is told
  // so, rather than failing every ASan run that checks an ECDSA key.
#ifdef __SANITIZE_ADDRESS__
  __lsan_disable();
#endif
  int rc = libssh2_userauth_publickey_frommemory(session, "probe", 5, nullptr, 0, text.data(), text.size(),
                                                 passphrase.c_str());
#ifdef __SANITIZE_ADDRESS__
  __lsan_enable();
#endif
  std::string error;
  if (rc != LIBSSH2_ERROR_SOCKET_SEND) {
    char* message = nullptr;
    libssh2_session_last_error(session, &message, nullptr, 0);
    error = message != nullptr && *message != '\0' ? message : "error " + std::to_string(rc);
  }
  libssh2_session_free(session);
  return error;
}

// The type of a PEM or PKCS#8 key libssh2 has read (OpenSSL reads it for
// libssh2 too).
std::string pemKeyType(const std::string& text, const std::string& passphrase) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  if (bio == nullptr) return "";
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, const_cast<char*>(passphrase.c_str()));
  BIO_free(bio);
  if (key == nullptr) return "";
  std::string type;
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: type = "rsa"; break;
    case EVP_PKEY_DSA: type = "dsa"; break;
    case EVP_PKEY_EC: type = "ecdsa"; break;
    case EVP_PKEY_ED25519: type = "ed25519"; break;
    default: type = "unknown";
  }
  EVP_PKEY_free(key);
  return type;
}

std::string shortType(const std::string& openSshType) {
  if (openSshType == "ssh-ed25519") return "ed25519";
  if (openSshType == "ssh-rsa") return "rsa";
  if (openSshType == "ssh-dss") return "dsa";
  if (startsWith(openSshType, "ecdsa-sha2-")) return "ecdsa";
  return openSshType;
}

}  // namespace

Result<KeyInfo, KeyProblem> checkClientKey(const std::string& flag, const std::string& path,
                                           const std::string& passphrase) {
  const std::string name = flag + " " + path + ": ";
  auto problem = [&](const std::string& what) { return fail(KeyProblem{name + what}); };
  const std::string makeNew = "make one with `ssh-keygen -t ed25519 -f FILE`";

  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (!fd) return problem(std::string("cannot open it: ") + std::strerror(errno) + " (name a readable private key)");
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return problem(std::string("cannot stat it: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return problem("is a directory (name the private key file in it, e.g. " + path + "/id_ed25519)");
  if (!S_ISREG(st.st_mode)) return problem("is not a regular file (name the private key file)");
  if (static_cast<uint64_t>(st.st_size) > MAX_KEY_BYTES) {
    return problem("is " + std::to_string(st.st_size) + " bytes, too large for a private key (name the key file)");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return problem(std::string("cannot read it: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);

  if (trimmedStart(text).empty()) return problem("is empty (name the private key file; " + makeNew + ")");
  if (looksLikePublicKey(text)) {
    return problem("is a public key; give the private key (usually the same name without .pub)");
  }
  if (startsWith(trimmedStart(text), "PuTTY-User-Key-File-")) {
    return problem("PuTTY's .ppk format is not supported by libssh2 1.10: convert it with "
                   "`puttygen " + path + " -O private-openssh-new -o NEWFILE` and give NEWFILE");
  }
  if (contains(text, "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY")) {
    return problem("the ssh.com (SECSH) private key format is not supported by libssh2 1.10: convert it to "
                   "OpenSSH's with `ssh-keygen -i -f " + path + " > NEWFILE`, or " + makeNew);
  }
  auto begin = text.find("-----BEGIN ");
  if (begin == std::string::npos || !contains(std::string_view(text).substr(begin, 64), "PRIVATE KEY-----")) {
    return problem("is not a private key (no '-----BEGIN ... PRIVATE KEY-----' line); " + makeNew);
  }
  if (text.find("-----END ", begin) == std::string::npos) {
    return problem("is truncated (no '-----END ... PRIVATE KEY-----' line): copy the whole file again");
  }

  KeyInfo info;
  auto key = agent::ClientKey::load(text);
  if (!key->openSshKeyType().empty()) {
    info.format = "OpenSSH";
    info.type = shortType(key->openSshKeyType());
    info.encrypted = key->openSshEncrypted();
    if (startsWith(key->openSshKeyType(), "sk-")) {
      return problem("is a FIDO security-key key (" + key->openSshKeyType() +
                     "), which libssh2 1.10 cannot use; " + makeNew);
    }
  } else if (contains(text, "-----BEGIN OPENSSH PRIVATE KEY-----")) {
    // OpenSSH's armour around a body ClientKey cannot read: damaged (libssh2
    // is asked below, and says what it found).
    info.format = "OpenSSH";
  } else {
    info.format = contains(text, "-----BEGIN PRIVATE KEY-----") || contains(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----")
                      ? "PKCS#8"
                      : "PEM";
    info.encrypted = contains(text, "Proc-Type: 4,ENCRYPTED") || contains(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----");
  }
  if (info.encrypted && passphrase.empty()) {
    return problem("is encrypted and no passphrase was given: pass --passphrase-file FILE or --passphrase-env VAR");
  }
  if (std::string error = libssh2LoadError(text, passphrase); !error.empty()) {
    if (info.encrypted) {
      return problem("the passphrase given does not decrypt it (wrong passphrase; libssh2: " + error + ")");
    }
    if (info.format == "OpenSSH") {
      return problem("libssh2 1.10 cannot read it: " + error + " (damaged or truncated?); " + makeNew);
    }
    return problem("libssh2 1.10 cannot read this " + info.format + " key: " + error +
                   "; convert it to OpenSSH's format with `ssh-keygen -p -f " + path + "` (it rewrites the file), or " +
                   makeNew);
  }
  if (info.format != "OpenSSH") info.type = pemKeyType(text, passphrase);
  if (info.type == "rsa") {
    info.warning = name + "is an RSA key: libssh2 1.10 signs with SHA-1 (ssh-rsa) only, which OpenSSH >= 8.8 "
                          "refuses by default; if sessions fail with an auth error, use an ed25519 key";
  } else if (info.type == "dsa") {
    info.warning = name + "is a DSA key (ssh-dss), which OpenSSH >= 7.0 refuses by default; if sessions fail "
                          "with an auth error, use an ed25519 key";
  }
  return info;
}

}  // namespace sshsoak
