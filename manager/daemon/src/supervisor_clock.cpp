#include "supervisor_clock.hpp"

#include <asio/steady_timer.hpp>

namespace scgi::manager {
namespace {

class TimerAlarm final : public Alarm {
 public:
  TimerAlarm(asio::io_context& control, std::chrono::nanoseconds delay,
             std::function<void()> callback)
      : timer_(control, delay) {
    // A timer that already fired may have its handler queued when the alarm
    // is destroyed: `armed` tells the handler not to run the callback then.
    timer_.async_wait([armed = armed_, callback = std::move(callback)](asio::error_code ec) {
      if (!ec && *armed) callback();
    });
  }
  ~TimerAlarm() override { *armed_ = false; }

 private:
  std::shared_ptr<bool> armed_ = std::make_shared<bool>(true);
  asio::steady_timer timer_;
};

}  // namespace

std::unique_ptr<Alarm> SteadyClock::after(std::chrono::nanoseconds delay,
                                          std::function<void()> callback) {
  return std::make_unique<TimerAlarm>(control_, delay, std::move(callback));
}

}  // namespace scgi::manager
