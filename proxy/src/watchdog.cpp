#include "scgi/proxy/watchdog.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>

namespace scgi::proxy {

Watchdog::Watchdog(const asio::any_io_executor& executor, std::function<void()> on_expire)
    : timer_(executor, Clock::time_point::max()), on_expire_(std::move(on_expire)) {}

void Watchdog::arm(Clock::duration timeout) {
  expired_ = false;
  deadline_ = Clock::now() + timeout;
  // Only a deadline earlier than the timer's needs the timer moved.
  if (deadline_ < timer_.expiry()) timer_.expires_at(deadline_);
}

void Watchdog::disarm() {
  deadline_ = Clock::time_point::max();
}

void Watchdog::stop() {
  stopped_ = true;
  timer_.cancel();
}

asio::awaitable<void> Watchdog::run() {
  while (!stopped_) {
    timer_.expires_at(deadline_);
    co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    if (stopped_) break;
    if (Clock::now() >= deadline_) {
      // Disarmed until the exchange arms it again (a retry may reuse it).
      expired_ = true;
      deadline_ = Clock::time_point::max();
      on_expire_();
    }
  }
}

}  // namespace scgi::proxy
