// Cap'n Proto standard stream framing over a pipe, for an event loop that
// reads whatever bytes are available: FrameReader reassembles whole messages
// from arbitrary chunks, so a reader never blocks on a half-written frame.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <vector>

namespace sshsoak {

struct FrameError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class FrameReader {
 public:
  // A frame larger than this is treated as corruption, not an allocation.
  static constexpr size_t MAX_FRAME_BYTES = 16u << 20;
  static constexpr uint32_t MAX_SEGMENTS = 512;

  void feed(const void* data, size_t len);
  // The next whole message as word-aligned memory for FlatArrayMessageReader,
  // or nullopt when more bytes are needed. Throws FrameError on a header that
  // cannot be valid; the reader is then unusable.
  std::optional<kj::Array<capnp::word>> next();
  size_t buffered() const { return buf_.size() - start_; }

 private:
  std::vector<unsigned char> buf_;
  size_t start_ = 0;
};

// Serialises a message in stream framing and writes it whole. Returns false
// when the reader has gone away (EPIPE).
bool writeFrame(int fd, capnp::MessageBuilder& message);

}  // namespace sshsoak
