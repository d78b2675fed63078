// The client key, checked at start, before any agent is spawned: a key the
// agents cannot use fails every session of the run, so it is refused now
// (exit 3) instead of after the first connection, or after 30 minutes of
// reconnects. The check uses what the agents use: ClientKey's reading of
// OpenSSH's format (session_agent/ssh/client_key.h) and libssh2's own key
// loader, run offline on a session that is never connected.
#pragma once

#include <string>

#include "shared/result.h"

namespace sshsoak {

struct KeyInfo {
  std::string type;     // "ed25519", "ecdsa", "rsa", "dsa", or OpenSSH's name for another type
  std::string format;   // "OpenSSH", "PEM" or "PKCS#8"
  bool encrypted = false;
  std::string warning;  // a key libssh2 can use but a server may refuse ("" if none)
};

// Why the key cannot be used, naming the flag, the path and the fix:
// "--key /x/id: encrypted and no passphrase given: pass --passphrase-file
// FILE or --passphrase-env VAR".
struct KeyProblem {
  std::string message;
};

// flag names the input in messages ("--key", or what made the key).
Result<KeyInfo, KeyProblem> checkClientKey(const std::string& flag, const std::string& path,
                                           const std::string& passphrase);

}  // namespace sshsoak
