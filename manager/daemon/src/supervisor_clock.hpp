// Time as a pool's supervisor sees it: the current time, and alarms that call
// back on the control thread. Injected, so that unit tests move time by hand
// (restart delays, stop_timeout, recycling by age, scaling) without waiting.
#pragma once

#include <asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>

#include "restart_policy.hpp"

namespace scgi::manager {

// An armed alarm; destroying it cancels it (its callback never runs after).
class Alarm {
 public:
  virtual ~Alarm() = default;
};

class SupervisorClock {
 public:
  virtual ~SupervisorClock() = default;
  virtual Clock::time_point now() const = 0;
  // Calls `callback` once, `delay` from now, unless the alarm is destroyed first.
  [[nodiscard]] virtual std::unique_ptr<Alarm> after(std::chrono::nanoseconds delay,
                                                     std::function<void()> callback) = 0;
};

// The real one: the steady clock and Asio timers on the control context.
class SteadyClock final : public SupervisorClock {
 public:
  explicit SteadyClock(asio::io_context& control) : control_(control) {}
  Clock::time_point now() const override { return Clock::now(); }
  std::unique_ptr<Alarm> after(std::chrono::nanoseconds delay,
                               std::function<void()> callback) override;

 private:
  asio::io_context& control_;
};

}  // namespace scgi::manager
