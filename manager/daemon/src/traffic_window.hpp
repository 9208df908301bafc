// A pool's recent traffic for status and `scgictl top`: the request rate and
// latency quantiles of the last few seconds, from snapshots of the balancer's
// request-duration histogram taken once a second (the difference of two
// snapshots is the histogram of the requests in between).
#pragma once

#include <chrono>
#include <deque>

#include "restart_policy.hpp"
#include "scgi/proxy/pool_stats.hpp"

namespace scgi::manager {

// The q-quantile (0..1) of the observations in `histogram`, interpolated
// linearly inside its bucket as Prometheus's histogram_quantile does; 0 when
// empty. Observations above the last bound count as the last bound.
double histogram_quantile(double q, const proxy::HistogramSnapshot& histogram);

class TrafficWindow {
 public:
  static constexpr auto kSpan = std::chrono::seconds(5);

  void add(Clock::time_point now, const proxy::HistogramSnapshot& durations);

  double requests_per_second() const;
  double quantile_seconds(double q) const;
  std::uint64_t total_requests() const;

 private:
  proxy::HistogramSnapshot difference() const;
  std::deque<std::pair<Clock::time_point, proxy::HistogramSnapshot>> samples_;
};

}  // namespace scgi::manager
