// Errors that say this process (or the machine) ran out of descriptors or
// memory, not that a peer failed: a backend is never blamed for them, and
// they are reported at most once per interval, not once per request.
#pragma once

#include <asio/error_code.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace scgi::proxy {

// EMFILE, ENFILE, ENOBUFS, ENOMEM.
bool is_local_shortage(const asio::error_code& ec);

// Lets one report through per interval and counts the ones it holds back.
class ReportThrottle {
 public:
  explicit ReportThrottle(std::chrono::milliseconds interval) : interval_(interval) {}
  // True when this report should be logged; `held_back` is then how many were
  // not since the last one.
  bool allow(std::uint64_t& held_back);

 private:
  std::chrono::milliseconds interval_;
  std::atomic<std::int64_t> next_allowed_ns_{0};
  std::atomic<std::uint64_t> held_back_{0};
};

}  // namespace scgi::proxy
