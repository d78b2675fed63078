#include "shared/frame.h"

#include <cstring>
#include <string>

#include "shared/fd.h"

namespace sshsoak {

static uint32_t readLe32(const unsigned char* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

void FrameReader::feed(const void* data, size_t len) {
  // Compact once the consumed prefix dominates, so the buffer stays small.
  if (start_ > 0 && start_ >= buf_.size() / 2) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(start_));
    start_ = 0;
  }
  auto* p = static_cast<const unsigned char*>(data);
  buf_.insert(buf_.end(), p, p + len);
}

std::optional<kj::Array<capnp::word>> FrameReader::next() {
  const unsigned char* p = buf_.data() + start_;
  size_t avail = buffered();
  if (avail < 4) return std::nullopt;
  uint32_t segments = readLe32(p) + 1;
  if (segments == 0 || segments > MAX_SEGMENTS) {
    throw FrameError("corrupt frame header: " + std::to_string(segments) + " segments");
  }
  size_t headerBytes = (4 + 4 * size_t{segments} + 7) / 8 * 8;
  if (avail < headerBytes) return std::nullopt;
  size_t bodyWords = 0;
  for (uint32_t i = 0; i < segments; ++i) bodyWords += readLe32(p + 4 + 4 * i);
  size_t total = headerBytes + bodyWords * 8;
  if (total > MAX_FRAME_BYTES) {
    throw FrameError("corrupt frame header: " + std::to_string(total) + " bytes");
  }
  if (avail < total) return std::nullopt;
  auto words = kj::heapArray<capnp::word>(total / 8);
  std::memcpy(words.begin(), p, total);
  start_ += total;
  if (start_ == buf_.size()) {
    buf_.clear();
    start_ = 0;
  }
  return words;
}

bool writeFrame(int fd, capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return writeAll(fd, bytes.begin(), bytes.size());
}

}  // namespace sshsoak
