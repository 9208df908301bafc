// Waiting for a condition without polling: the code that changes what a
// condition reads calls notify(), and every coroutine waiting on this
// notifier checks its condition again. One thread only (the one the waiters
// and notify() run on), so no wake-up is lost between a check and the wait.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <memory>
#include <set>

namespace scgi {

class Notifier {
 public:
  using Clock = std::chrono::steady_clock;

  Notifier() = default;
  // Wakes every waiter, which then returns false without looking at its
  // condition (what it reads may be gone with the owner of this notifier).
  ~Notifier() {
    state_->abandoned = true;
    notify();
  }
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Something a waiter's condition reads may have changed.
  void notify() {
    for (asio::steady_timer* timer : state_->waiting)
      timer->cancel();
  }

  // Returns true once `done()` holds, false at `deadline` or when this
  // notifier is destroyed first. `done` is checked now and at each notify().
  template <class Done>
  asio::awaitable<bool> wait_until(Done done, Clock::time_point deadline) {
    const std::shared_ptr<State> state = state_;  // outlives this notifier if need be
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
      if (state->abandoned) co_return false;
      if (done()) co_return true;
      if (Clock::now() >= deadline) co_return false;
      timer.expires_at(deadline);
      state->waiting.insert(&timer);
      co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      state->waiting.erase(&timer);
    }
  }

 private:
  struct State {
    std::set<asio::steady_timer*> waiting;
    bool abandoned = false;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace scgi
