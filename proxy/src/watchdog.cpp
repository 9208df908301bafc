#include "watchdog.hpp"

namespace scgi::proxy {

Watchdog::Watchdog(const asio::any_io_executor& executor, std::function<void()> on_expire)
    : state_(std::make_shared<State>(executor, std::move(on_expire))) {}

void Watchdog::arm_until(Clock::time_point deadline) {
  State& s = *state_;
  s.expired = false;
  s.deadline = deadline;
  if (!s.waiting) {
    wait(state_);
  } else if (s.deadline < s.timer.expiry()) {
    // Cancels the pending wait; its handler waits again for the new deadline.
    s.timer.expires_at(s.deadline);
  }
}

void Watchdog::disarm() {
  state_->deadline = Clock::time_point::max();
}

void Watchdog::stop() {
  if (!state_ || state_->stopped) return;
  state_->stopped = true;
  state_->on_expire = nullptr;  // drops what it captured now, not when the handler runs
  state_->timer.cancel();
}

void Watchdog::wait(const std::shared_ptr<State>& state) {
  state->waiting = true;
  state->timer.expires_at(state->deadline);
  state->timer.async_wait([state](const asio::error_code&) {
    state->waiting = false;
    if (state->stopped || state->deadline == Clock::time_point::max()) return;
    if (Clock::now() < state->deadline) {
      wait(state);  // the deadline moved since this wait began
      return;
    }
    state->expired = true;
    state->deadline = Clock::time_point::max();
    state->on_expire();
  });
}

}  // namespace scgi::proxy
