// When a dynamic pool (min_workers < max_workers) grows or shrinks: a pure
// rule over what the balancer knows, sampled every kTick by the supervisor.
//
// Grow by one when the request at the head of the pool's queue has waited
// kGrowWait or more (a worker more would have served it), while fewer than
// kMaxStarting workers are starting and at least kGrowInterval after the last
// growth: fast enough to follow a burst, bounded so that a slow-starting app
// is not flooded with siblings. The queue's age is exact: unlike php-fpm's
// count of idle processes or uWSGI's cheaper algorithms, no request has to be
// turned away or guessed at to see that the pool is short.
//
// Shrink by one when, for idle_timeout without a break, nothing waited and the
// requests in flight would have fit on one worker fewer; the clock restarts
// after each change, so the pool steps down one worker per idle_timeout and
// never flaps between growing and shrinking.
//
// Starting toward a target (the pool's start, scgictl scale, a reload's new
// size) is paced the same way: a few workers a tick, and only while few are
// starting, so that a pool of hundreds never forks them in one burst on the
// control thread, and the control socket answers between ticks.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "restart_policy.hpp"
#include "scgi/config.hpp"

namespace scgi::manager {

struct ScaleInput {
  Clock::time_point now;
  std::uint32_t target = 0;  // workers wanted now
  std::uint32_t min_workers = 0;
  std::uint32_t max_workers = 0;
  std::uint32_t starting = 0;               // workers of the pool starting now
  std::chrono::nanoseconds oldest_wait{0};  // age of the request at the head of the queue
  std::uint32_t in_flight = 0;              // requests in flight on the pool's workers
  std::uint32_t concurrency = 1;            // per worker
};

enum class ScaleDecision { stay, grow, shrink };

class Scaler {
 public:
  static constexpr auto kTick = std::chrono::milliseconds(100);
  static constexpr auto kGrowWait = std::chrono::milliseconds(50);
  static constexpr auto kGrowInterval = std::chrono::milliseconds(250);
  static constexpr std::uint32_t kMaxStarting = 2;
  // Pacing of starts toward the target.
  static constexpr std::uint32_t kStartsPerTick = 4;
  static constexpr std::uint32_t kMaxStartingAtOnce = 8;

  explicit Scaler(std::chrono::milliseconds idle_timeout) : idle_timeout_(idle_timeout) {}
  void set_idle_timeout(std::chrono::milliseconds idle_timeout) { idle_timeout_ = idle_timeout; }

  ScaleDecision decide(const ScaleInput& input);

 private:
  std::chrono::milliseconds idle_timeout_;
  Clock::time_point last_growth_{};
  Clock::time_point spare_since_{};
  bool spare_ = false;
};

// How many workers to start this tick when `missing` are short of the target
// and `starting` are starting already.
std::uint32_t starts_allowed(std::uint32_t missing, std::uint32_t starting);

// Why scgictl scale may not give `pool` (as its file configures it) `workers`
// workers, or nullopt when it may. A pool that grows and shrinks is scaled
// within its own min_workers..max_workers; a fixed one within 0 and [manager]
// max_workers_per_pool. The message names the limit, and how to raise it
// (edit `config_path`, then scgictl reload).
std::optional<std::string> scale_refusal(const PoolConfig& pool, std::uint32_t max_workers_per_pool,
                                         std::uint32_t workers, std::string_view config_path);

}  // namespace scgi::manager
