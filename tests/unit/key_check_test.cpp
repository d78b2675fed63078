// The client key checked at start (supervisor/key_check.h), on real key
// files made here by OpenSSH's ssh-keygen: each key the agents cannot use is
// refused with the path and the fix, each they can use is accepted with its
// type. The files are throwaway ones in a private temp directory.
#include "supervisor/key_check.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "supervisor/run/local_sshd.h"

using namespace sshsoak;
namespace fs = std::filesystem;

namespace {

class KeyCheck : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/sshsoak-keycheck-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    // -a 4: few KDF rounds, so that decrypting in the test is quick.
    keygen({"-t", "ed25519", "-N", "", "-f", at("ed25519")});
    keygen({"-t", "ed25519", "-a", "4", "-N", "right-pass", "-f", at("ed25519_enc")});
    keygen({"-t", "rsa", "-b", "2048", "-N", "", "-f", at("rsa")});
    keygen({"-t", "ecdsa", "-N", "", "-f", at("ecdsa")});
    keygen({"-t", "ecdsa", "-N", "", "-m", "PKCS8", "-f", at("ecdsa_pkcs8")});
    keygen({"-t", "ecdsa", "-N", "right-pass", "-m", "PKCS8", "-f", at("ecdsa_pkcs8_enc")});
    keygen({"-t", "ecdsa", "-N", "right-pass", "-m", "PEM", "-f", at("ecdsa_pem_enc")});
    std::string whole = read(at("ed25519"));
    write(at("truncated"), whole.substr(0, whole.size() / 2));
    // Damaged in the middle, both armour lines intact.
    std::string damaged = whole;
    damaged[damaged.size() / 2] = '*';
    write(at("damaged"), damaged);
    write(at("putty.ppk"), "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\n");
    write(at("empty"), "");
    fs::create_directory(at("a_directory"));
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string at(const std::string& name) { return dir_ + "/" + name; }
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
  static void keygen(std::vector<std::string> args) {
    args.insert(args.begin(), "-q");
    std::string out;
    ASSERT_EQ(runProgram("/usr/bin/ssh-keygen", args, &out), 0) << out;
  }

  // The refusal's message, or "" if the key was accepted.
  static std::string refusal(const std::string& name, const std::string& passphrase = "") {
    auto r = checkClientKey("--key", at(name), passphrase);
    return r ? "" : r.error().message;
  }

  static std::string dir_;
};
std::string KeyCheck::dir_;

TEST_F(KeyCheck, APlainEd25519KeyIsAcceptedWithoutAWarning) {
  auto r = checkClientKey("--key", at("ed25519"), "");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->type, "ed25519");
  EXPECT_EQ(r->format, "OpenSSH");
  EXPECT_FALSE(r->encrypted);
  EXPECT_EQ(r->warning, "");
}

TEST_F(KeyCheck, AnEncryptedKeyNeedsItsRightPassphrase) {
  std::string none = refusal("ed25519_enc");
  EXPECT_NE(none.find("--key " + at("ed25519_enc") + ": "), std::string::npos) << none;
  EXPECT_NE(none.find("encrypted and no passphrase was given"), std::string::npos) << none;
  EXPECT_NE(none.find("--passphrase-file"), std::string::npos) << none;

  std::string wrong = refusal("ed25519_enc", "wrong-pass");
  EXPECT_NE(wrong.find(at("ed25519_enc")), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("wrong passphrase"), std::string::npos) << wrong;

  auto right = checkClientKey("--key", at("ed25519_enc"), "right-pass");
  ASSERT_TRUE(right) << right.error().message;
  EXPECT_TRUE(right->encrypted);
  EXPECT_EQ(right->type, "ed25519");
}

TEST_F(KeyCheck, EncryptedPemAndPkcs8KeysAreCheckedTheSameWay) {
  for (const char* name : {"ecdsa_pkcs8_enc", "ecdsa_pem_enc"}) {
    EXPECT_NE(refusal(name).find("no passphrase was given"), std::string::npos) << name;
    EXPECT_NE(refusal(name, "wrong-pass").find("wrong passphrase"), std::string::npos) << name;
    auto right = checkClientKey("--key", at(name), "right-pass");
    ASSERT_TRUE(right) << name << ": " << right.error().message;
    EXPECT_EQ(right->type, "ecdsa") << name;
    EXPECT_TRUE(right->encrypted) << name;
  }
}

// libssh2 1.10 reads ECDSA keys in OpenSSH's format and in PKCS#8 (OpenSSL
// does the latter for it): accepted, no warning.
TEST_F(KeyCheck, EcdsaKeysAreAcceptedInOpenSshAndPkcs8Formats) {
  auto openssh = checkClientKey("--key", at("ecdsa"), "");
  ASSERT_TRUE(openssh) << openssh.error().message;
  EXPECT_EQ(openssh->type, "ecdsa");
  EXPECT_EQ(openssh->warning, "");
  auto pkcs8 = checkClientKey("--key", at("ecdsa_pkcs8"), "");
  ASSERT_TRUE(pkcs8) << pkcs8.error().message;
  EXPECT_EQ(pkcs8->format, "PKCS#8");
  EXPECT_EQ(pkcs8->type, "ecdsa");
}

// An old server may still take ssh-rsa, so an RSA key is not refused; the
// warning says why a modern one will.
TEST_F(KeyCheck, AnRsaKeyIsAcceptedWithAWarningAboutSha1) {
  auto r = checkClientKey("--key", at("rsa"), "");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->type, "rsa");
  EXPECT_NE(r->warning.find(at("rsa")), std::string::npos) << r->warning;
  EXPECT_NE(r->warning.find("SHA-1"), std::string::npos) << r->warning;
  EXPECT_NE(r->warning.find("ed25519"), std::string::npos) << r->warning;
}

TEST_F(KeyCheck, FilesThatAreNoUsableKeyAreRefusedWithTheFix) {
  struct Case {
    std::string name;
    std::string says;
  };
  for (const Case& c : std::vector<Case>{
           {"truncated", "truncated"},
           {"damaged", "cannot read it"},
           {"ed25519.pub", "is a public key"},
           {"putty.ppk", "puttygen"},
           {"empty", "is empty"},
           // As root, file permissions do not stop a read: a directory and a
           // missing path stand for the unreadable file.
           {"a_directory", "is a directory"},
           {"no_such_key", "No such file or directory"},
       }) {
    std::string message = refusal(c.name);
    EXPECT_NE(message.find("--key " + at(c.name) + ": "), std::string::npos) << c.name << ": " << message;
    EXPECT_NE(message.find(c.says), std::string::npos) << c.name << ": " << message;
  }
}

// Not as root only: a file the user may not read.
TEST_F(KeyCheck, AFileWithoutReadPermissionIsRefusedWhenPermissionsApply) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads any file; the directory and missing-path cases stand for it";
  std::string path = at("unreadable");
  write(path, read(at("ed25519")));
  ::chmod(path.c_str(), 0);
  EXPECT_NE(refusal("unreadable").find("Permission denied"), std::string::npos);
}

}  // namespace
