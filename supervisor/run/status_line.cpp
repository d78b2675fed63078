#include "supervisor/run/status_line.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

namespace sshsoak::status_line {

namespace {

std::mutex mutex;
std::string current;  // what is on screen now ("" = nothing)

void erase() {
  if (!current.empty()) std::fputs("\r\033[K", stderr);
}

void draw() {
  if (!current.empty()) {
    std::fputs(current.c_str(), stderr);
    std::fflush(stderr);
  }
}

class Sink : public spdlog::sinks::sink {
 public:
  Sink() : inner_(std::make_unique<spdlog::sinks::stderr_color_sink_mt>()) {}
  void log(const spdlog::details::log_msg& msg) override {
    std::lock_guard<std::mutex> lock(mutex);
    erase();
    inner_->log(msg);
    inner_->flush();
    draw();
  }
  void flush() override { inner_->flush(); }
  void set_pattern(const std::string& pattern) override { inner_->set_pattern(pattern); }
  void set_formatter(std::unique_ptr<spdlog::formatter> f) override { inner_->set_formatter(std::move(f)); }

 private:
  std::unique_ptr<spdlog::sinks::stderr_color_sink_mt> inner_;
};

}  // namespace

bool enabled() {
  static const bool on = ::isatty(STDOUT_FILENO) && ::isatty(STDERR_FILENO);
  return on;
}

void set(const std::string& text) {
  if (!enabled()) return;
  std::lock_guard<std::mutex> lock(mutex);
  erase();
  current = text;
  draw();
}

void clear() {
  std::lock_guard<std::mutex> lock(mutex);
  erase();
  std::fflush(stderr);
  current.clear();
}

std::shared_ptr<spdlog::sinks::sink> makeConsoleSink() { return std::make_shared<Sink>(); }

}  // namespace sshsoak::status_line
