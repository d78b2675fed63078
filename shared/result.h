// The one shape of an expected outcome (KJ style guide: a branch the caller
// expects, such as auth refused, host unreachable or a bad flag, is a value;
// a programming error or a broken system call is thrown with context).
//
// Each layer picks one error type E and uses Result<T, E> for every call
// that can fail in an expected way: the agent's SshError (a failure
// category, the peer's or libssh2's words, the libssh2 code), the command
// line's UsageError (an exit code and a message naming the input and the
// fix). Callers test the category, never the message text.
#pragma once

#include <type_traits>
#include <utility>
#include <variant>

namespace sshsoak {

// Marks the error alternative, so that Result<T, E> works even where T and
// E could be built from the same value.
template <typename E>
struct Failed {
  E error;
};
template <typename E>
Failed<std::decay_t<E>> fail(E&& error) {
  return {std::forward<E>(error)};
}

template <typename T, typename E>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  template <typename F, typename = std::enable_if_t<std::is_constructible_v<E, F>>>
  Result(Failed<F> failed) : v_(std::in_place_index<1>, std::move(failed.error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const { return std::get<1>(v_); }
  E& error() { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

// A call that yields nothing but can fail in an expected way.
struct Ok {};
template <typename E>
using Status = Result<Ok, E>;

}  // namespace sshsoak
