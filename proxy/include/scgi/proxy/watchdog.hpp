// A deadline for one phase of an exchange, enforced by one timer that runs
// beside the exchange (`co_await (work() && watchdog.run())`). Moving the
// deadline is a plain store, so re-arming per read or write costs no timer
// operation; the timer is re-set only when it fires early or the deadline
// comes closer.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>

namespace scgi::proxy {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  // `on_expire` runs once, on the exchange's thread, when a deadline passes:
  // it cancels whatever the exchange is waiting on.
  Watchdog(const asio::any_io_executor& executor, std::function<void()> on_expire);

  void arm(Clock::duration timeout);         // the deadline is now + timeout; clears expired()
  void disarm();                             // no deadline until armed again
  void stop();                               // ends run(); the exchange is done
  bool expired() const { return expired_; }  // the last deadline passed

  asio::awaitable<void> run();

 private:
  asio::steady_timer timer_;
  std::function<void()> on_expire_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool expired_ = false;
  bool stopped_ = false;
};

}  // namespace scgi::proxy
