#include "local_shortage.hpp"

#include <cerrno>

namespace scgi::proxy {

bool is_local_shortage(const asio::error_code& ec) {
  if (ec.category() != asio::system_category()) return false;
  const int value = ec.value();
  return value == EMFILE || value == ENFILE || value == ENOBUFS || value == ENOMEM;
}

bool ReportThrottle::allow(std::uint64_t& held_back) {
  const std::int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now().time_since_epoch())
                               .count();
  std::int64_t next = next_allowed_ns_.load(std::memory_order_relaxed);
  const std::int64_t after = now + std::chrono::nanoseconds(interval_).count();
  // Any thread may report; exactly one wins each interval.
  if (now < next || !next_allowed_ns_.compare_exchange_strong(next, after)) {
    held_back_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  held_back = held_back_.exchange(0, std::memory_order_relaxed);
  return true;
}

}  // namespace scgi::proxy
