#include "session_agent/ssh/server_hello.h"

#include <algorithm>

namespace sshsoak::agent {

namespace {

constexpr uint8_t SSH_MSG_KEXINIT = 20;

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::vector<std::string> splitNames(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size() && !list.empty()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    if (comma > start) out.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out.empty() ? "(nothing)" : out;
}

bool intersects(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  return std::any_of(a.begin(), a.end(), [&](const std::string& n) { return std::find(b.begin(), b.end(), n) != b.end(); });
}

// The first name of ours the server also offers (the client's order decides).
std::string firstCommon(const std::vector<std::string>& ours, const std::vector<std::string>& theirs) {
  for (const auto& n : ours) {
    if (std::find(theirs.begin(), theirs.end(), n) != theirs.end()) return n;
  }
  return "";
}

bool hasOwnIntegrity(const std::string& cipher) {
  return cipher.rfind("chacha20-poly1305", 0) == 0 || cipher.find("-gcm") != std::string::npos;
}

// "the cipher lists (client to server)" etc.
std::optional<std::string> mismatchOf(const char* what, const std::vector<std::string>& ours,
                                      const std::vector<std::string>& theirs) {
  if (intersects(ours, theirs)) return std::nullopt;
  return std::string("no common ") + what + ": we offer " + joinNames(ours) + "; the server offers " +
         joinNames(theirs);
}

}  // namespace

std::optional<KexOffer> parseKexinitPacket(const uint8_t* data, size_t size) {
  if (size < 6) return std::nullopt;
  // In 64 bits: a length near 2^32 must not wrap past the checks.
  uint64_t len = be32(data);
  if (len + 4 > size || len < 2) return std::nullopt;
  uint8_t padding = data[4];
  if (padding + 1u > len) return std::nullopt;
  const uint8_t* p = data + 5;
  const uint8_t* end = data + 4 + len - padding;
  if (end - p < 17 || p[0] != SSH_MSG_KEXINIT) return std::nullopt;
  p += 17;  // message number + cookie
  std::vector<std::string> lists;
  for (int i = 0; i < 6; ++i) {
    if (end - p < 4) return std::nullopt;
    uint32_t n = be32(p);
    p += 4;
    if (n > static_cast<size_t>(end - p)) return std::nullopt;
    lists.emplace_back(reinterpret_cast<const char*>(p), n);
    p += n;
  }
  return KexOffer{splitNames(lists[0]), splitNames(lists[1]), splitNames(lists[2]),
                  splitNames(lists[3]), splitNames(lists[4]), splitNames(lists[5])};
}

std::optional<std::string> describeMismatch(const KexOffer& ours, const KexOffer& theirs) {
  if (auto m = mismatchOf("kex", ours.kex, theirs.kex)) return m;
  if (auto m = mismatchOf("hostkey", ours.hostKey, theirs.hostKey)) return m;
  if (auto m = mismatchOf("cipher (client to server)", ours.encCs, theirs.encCs)) return m;
  if (auto m = mismatchOf("cipher (server to client)", ours.encSc, theirs.encSc)) return m;
  if (!hasOwnIntegrity(firstCommon(ours.encCs, theirs.encCs))) {
    if (auto m = mismatchOf("mac (client to server)", ours.macCs, theirs.macCs)) return m;
  }
  if (!hasOwnIntegrity(firstCommon(ours.encSc, theirs.encSc))) {
    if (auto m = mismatchOf("mac (server to client)", ours.macSc, theirs.macSc)) return m;
  }
  return std::nullopt;
}

void ServerHello::feed(const uint8_t* data, size_t size) {
  size_t i = 0;
  while (i < size && !bannerSeen_ && !flooded_) {
    char c = static_cast<char>(data[i++]);
    ++preBanner_;
    if (line_.size() < 255) line_ += c;
    if (c == '\n') {
      if (line_.rfind("SSH-", 0) == 0) {
        bannerSeen_ = true;
        banner_ = line_;
        while (!banner_.empty() && (banner_.back() == '\n' || banner_.back() == '\r')) banner_.pop_back();
      } else {
        lastLine_ = line_;
        while (!lastLine_.empty() && (lastLine_.back() == '\n' || lastLine_.back() == '\r')) lastLine_.pop_back();
      }
      line_.clear();
    }
    if (!bannerSeen_ && preBanner_ > MAX_PRE_BANNER) flooded_ = true;
  }
  if (i >= size || !bannerSeen_) return;
  afterBanner_ += size - i;
  // Packets until the KEXINIT: others (SSH_MSG_IGNORE, DEBUG) are skipped,
  // but all of them together stay under MAX_BEFORE_KEXINIT.
  while (i < size && !kexinitDone_ && !flooded_) {
    if (packet_.size() < 4) {
      size_t head = std::min(size - i, 4 - packet_.size());
      packet_.insert(packet_.end(), data + i, data + i + head);
      i += head;
      if (packet_.size() < 4) return;
      if (uint64_t{be32(packet_.data())} + 4 > MAX_KEXINIT) {  // 64 bits: no wrap near 2^32
        flooded_ = true;
        return;
      }
    }
    size_t total = size_t{be32(packet_.data())} + 4;
    size_t n = std::min(size - i, total - packet_.size());
    packet_.insert(packet_.end(), data + i, data + i + n);
    i += n;
    if (packet_.size() < total) return;
    if (packet_.size() > 5 && packet_[5] == SSH_MSG_KEXINIT) {
      kexinitDone_ = true;
      offer_ = parseKexinitPacket(packet_.data(), packet_.size());
      packet_.clear();
      packet_.shrink_to_fit();
      return;
    }
    packet_.clear();
  }
  if (!kexinitDone_ && afterBanner_ > MAX_BEFORE_KEXINIT) flooded_ = true;
}

}  // namespace sshsoak::agent
