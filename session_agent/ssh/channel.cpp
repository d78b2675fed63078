#include "session_agent/ssh/channel.h"

#include "session_agent/ssh/connection.h"

namespace sshsoak::agent {

int Channel::open(LIBSSH2_SESSION* session) {
  session_ = session;
  channel_ = libssh2_channel_open_session(session);
  return channel_ != nullptr ? 0 : libssh2_session_last_errno(session);
}

int Channel::open(LIBSSH2_SESSION* session, uint32_t windowBytes) {
  static constexpr char TYPE[] = "session";
  session_ = session;
  channel_ = libssh2_channel_open_ex(session, TYPE, sizeof TYPE - 1, windowBytes, LIBSSH2_CHANNEL_PACKET_DEFAULT,
                                     nullptr, 0);
  return channel_ != nullptr ? 0 : libssh2_session_last_errno(session);
}

ChannelStatus Channel::fail(const std::string& what, int libssh2Error) {
  failure_ = SshError{wire::FailureCategory::CHANNEL, libssh2Failure(session_, what), libssh2Error};
  failed_ = true;
  return ChannelStatus::Failed;
}

void Channel::closeNow() noexcept {
  if (channel_ == nullptr) return;
  libssh2_channel_close(channel_);
  libssh2_channel_free(channel_);
  channel_ = nullptr;
}

int Channel::free() {
  int rc = libssh2_channel_free(channel_);
  if (rc != LIBSSH2_ERROR_EAGAIN) channel_ = nullptr;
  return rc;
}

}  // namespace sshsoak::agent
