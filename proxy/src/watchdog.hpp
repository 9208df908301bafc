// A deadline for one phase of an exchange, enforced by one timer. Moving the
// deadline is a plain store, so re-arming per read or write costs no timer
// operation; the timer is re-set only when it fires early or the deadline
// comes closer. It runs on completion handlers, not a coroutine of its own,
// so an idle connection costs one timer, not a coroutine frame.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>

namespace scgi::proxy {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  // `on_expire` runs once per deadline that passes, on the exchange's thread:
  // it cancels whatever the exchange is waiting on. Never after stop().
  Watchdog(const asio::any_io_executor& executor, std::function<void()> on_expire);
  ~Watchdog() { stop(); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void arm(Clock::duration timeout) { arm_until(Clock::now() + timeout); }
  void arm_until(Clock::time_point deadline);       // clears expired()
  void disarm();                                    // no deadline until armed again
  void stop();                                      // for good: the exchange is done
  bool expired() const { return state_->expired; }  // the last deadline passed

 private:
  // Shared with the pending timer handler, which may run after the exchange
  // (and this Watchdog) are gone; it then sees `stopped` and does nothing.
  struct State {
    State(const asio::any_io_executor& executor, std::function<void()> callback)
        : timer(executor), on_expire(std::move(callback)) {}
    asio::steady_timer timer;
    std::function<void()> on_expire;
    Clock::time_point deadline = Clock::time_point::max();
    bool waiting = false;  // a timer wait is pending
    bool expired = false;
    bool stopped = false;
  };
  static void wait(const std::shared_ptr<State>& state);

  std::shared_ptr<State> state_;
};

}  // namespace scgi::proxy
