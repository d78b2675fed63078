// The client key read once for churn: the public half from OpenSSH's format,
// our own Ed25519 signature (verified here with the public key alone), and
// everything else left to libssh2. The keys are throwaway ones made for
// this test with ssh-keygen -t ed25519 (the second with passphrase "secret").
#include "session_agent/ssh/client_key.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <memory>

using namespace sshsoak::agent;

namespace {

constexpr const char* PLAIN_KEY = R"(-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACAho/2LtAp4029j1B3X5qud063qP6dPTt1QQAw9/OH+sAAAAIguF5QhLheU
IQAAAAtzc2gtZWQyNTUxOQAAACAho/2LtAp4029j1B3X5qud063qP6dPTt1QQAw9/OH+sA
AAAEABtHScN3WS6gyL4L9JZ9yr+wvsBc5+FBte0j+oKBwTpSGj/Yu0CnjTb2PUHdfmq53T
reo/p09O3VBADD384f6wAAAAAAECAwQF
-----END OPENSSH PRIVATE KEY-----
)";
constexpr const char* PLAIN_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGj/Yu0CnjTb2PUHdfmq53Treo/p09O3VBADD384f6w";

constexpr const char* ENCRYPTED_KEY = R"(-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABAzeBSizJ
nqRWYxIjTSxQvmAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIBHTx3rZxV1e79vE
//Fti9QnSd43pVyBnHOa5o8liMkeAAAAkLENAnGhy0JfR3nrGTP9yap1u7ZuCiz1PtXyUh
lR8qKnJu9jtEGaThvaQuH30A/XR7tV4U8Dy3sVcdkLP+Gre93rPuL6hUqQQytQ+bhkysq7
ea2mKSfpNn8BlKpMKU9Rzk0uJsTC5A/wq8mAHReYTONSYQ3JGygrFKpPYtwBHJ5vQNoujD
KISyYiHFUEnRYYSg==
-----END OPENSSH PRIVATE KEY-----
)";
constexpr const char* ENCRYPTED_PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBHTx3rZxV1e79vE//Fti9QnSd43pVyBnHOa5o8liMke";

}  // namespace

TEST(Base64, RoundTripsEveryLengthAndSkipsWhitespace) {
  std::string bytes;
  for (int n = 0; n < 40; ++n) {
    EXPECT_EQ(base64Decode(base64Encode(bytes)), bytes) << n;
    bytes.push_back(static_cast<char>(n * 37 + 200));
  }
  EXPECT_EQ(base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64Encode("fo"), "Zm8=");
  EXPECT_EQ(base64Decode("Zm9v\nYmFy\n"), "foobar");
  EXPECT_EQ(base64Decode("Zm8="), "fo");
  EXPECT_FALSE(base64Decode("Zm9v*"));
  EXPECT_FALSE(base64Decode("Z"));
}

TEST(ClientKey, AnUnencryptedEd25519KeySignsWhatItsPublicKeyVerifies) {
  auto key = ClientKey::load(PLAIN_KEY);
  EXPECT_EQ(key->publicKeyLine(), PLAIN_PUB);
  ASSERT_TRUE(key->canSign());

  const std::string message = "session id and userauth request";
  unsigned char* sig = nullptr;
  size_t sigLen = 0;
  void* abstract = const_cast<ClientKey*>(key.get());
  ASSERT_EQ(ClientKey::signCallback(nullptr, &sig, &sigLen, reinterpret_cast<const unsigned char*>(message.data()),
                                    message.size(), &abstract),
            0);
  std::unique_ptr<unsigned char, decltype(&std::free)> owned(sig, &std::free);
  ASSERT_EQ(sigLen, 64u);

  // The blob's last 32 bytes are the public key (string "ssh-ed25519", string key).
  const std::string& blob = key->publicBlob();
  ASSERT_EQ(blob.size(), 4 + 11 + 4 + 32u);
  EVP_PKEY* pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                              reinterpret_cast<const unsigned char*>(blob.data() + 19), 32);
  ASSERT_NE(pub, nullptr);
  auto verify = [&](const std::string& m) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pub) == 1 &&
             EVP_DigestVerify(ctx, sig, sigLen, reinterpret_cast<const unsigned char*>(m.data()), m.size()) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
  };
  EXPECT_TRUE(verify(message));
  EXPECT_FALSE(verify(message + "!"));
  EVP_PKEY_free(pub);
}

TEST(ClientKey, AnEncryptedKeyGivesItsPublicHalfAndLeavesSigningToLibssh2) {
  auto key = ClientKey::load(ENCRYPTED_KEY);
  EXPECT_EQ(key->publicKeyLine(), ENCRYPTED_PUB);
  EXPECT_FALSE(key->canSign());
  EXPECT_EQ(key->fileText(), ENCRYPTED_KEY);
}

TEST(ClientKey, OtherFormatsAndDamageAreLeftToLibssh2) {
  for (const char* text : {"", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow==\n-----END RSA PRIVATE KEY-----\n",
                           "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5v\n"
                           "-----END OPENSSH PRIVATE KEY-----\n"}) {
    auto key = ClientKey::load(text);
    EXPECT_TRUE(key->publicKeyLine().empty()) << text;
    EXPECT_FALSE(key->canSign()) << text;
    EXPECT_EQ(key->fileText(), text);
  }
  // A private section whose check words differ (a wrong passphrase's mark) is not used.
  std::string damaged = PLAIN_KEY;
  auto body = damaged.find('\n') + 1;
  auto raw = base64Decode(damaged.substr(body, damaged.find("-----END") - body));
  ASSERT_TRUE(raw);
  // The private section follows the 51-byte public blob; its first check word starts 4 bytes in.
  auto at = raw->find(std::string("\x00\x00\x00\x88", 4));
  ASSERT_NE(at, std::string::npos);
  (*raw)[at + 4] ^= 0x01;
  auto broken = ClientKey::load("-----BEGIN OPENSSH PRIVATE KEY-----\n" + base64Encode(*raw) +
                                "\n-----END OPENSSH PRIVATE KEY-----\n");
  EXPECT_EQ(broken->publicKeyLine(), PLAIN_PUB);
  EXPECT_FALSE(broken->canSign());
}
