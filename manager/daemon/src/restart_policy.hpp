// When to restart a worker that failed, and when a pool counts as failing.
//
// Backoff (one per worker slot): the first restart waits restart_backoff[0];
// each failure in a row doubles the wait up to restart_backoff[1]; a worker
// that stayed up for the ceiling resets it. It never gives up.
//
// FailingDetector (one per pool): a pool is failing after kFailures failures
// within kWindow with no worker staying up (kStayedUp) in between: the
// metric, status and a log line say so, restarts go on at the ceiling, and
// the pool recovers by itself as soon as a worker stays up.
#pragma once

#include <chrono>
#include <deque>

#include "scgi/config.hpp"

namespace scgi::manager {

using Clock = std::chrono::steady_clock;

class Backoff {
 public:
  explicit Backoff(RestartBackoff limits) : limits_(limits) {}

  // A failure now: the delay before the next start.
  Milliseconds on_failure();
  // The worker has been up since `since`; resets once that lasted the ceiling.
  void on_up(Clock::time_point since, Clock::time_point now);
  int failures_in_a_row() const { return failures_; }
  void restore(int failures_in_a_row) { failures_ = failures_in_a_row; }  // an upgrade's

 private:
  RestartBackoff limits_;
  int failures_ = 0;
};

class FailingDetector {
 public:
  static constexpr int kFailures = 5;
  static constexpr auto kWindow = std::chrono::seconds(60);
  static constexpr auto kStayedUp = std::chrono::seconds(10);

  // Each returns true when the verdict changed (log it).
  bool on_failure(Clock::time_point now);
  bool on_up(Clock::time_point since, Clock::time_point now);
  bool failing() const { return failing_; }
  // An upgrade's: the failures counted so far, and the verdict.
  const std::deque<Clock::time_point>& recent_failures() const { return failures_; }
  void restore(std::deque<Clock::time_point> failures, bool failing) {
    failures_ = std::move(failures);
    failing_ = failing;
  }

 private:
  std::deque<Clock::time_point> failures_;
  bool failing_ = false;
};

}  // namespace scgi::manager
