#include <catch2/catch.hpp>

#include "traffic_window.hpp"

using namespace scgi;
using namespace scgi::manager;
using namespace std::chrono_literals;

namespace {

// A histogram with `n` observations in the bucket whose upper bound is `bound`.
proxy::HistogramSnapshot with(proxy::HistogramSnapshot h, double bound, std::uint64_t n) {
  for (std::size_t i = 0; i < proxy::kLatencyBuckets.size(); ++i)
    if (proxy::kLatencyBuckets[i] == bound) h.buckets[i] += n;
  h.count += n;
  return h;
}

}  // namespace

TEST_CASE("quantiles interpolate inside the bucket, as Prometheus does", "[manager][traffic]") {
  proxy::HistogramSnapshot h;
  CHECK(histogram_quantile(0.5, h) == 0);
  h = with(h, 0.001, 50);  // (0.0005, 0.001]
  h = with(h, 0.01, 50);   // (0.005, 0.01]
  CHECK(histogram_quantile(0.5, h) == Approx(0.001));
  CHECK(histogram_quantile(0.25, h) == Approx(0.00075));
  CHECK(histogram_quantile(0.99, h) == Approx(0.005 + 0.005 * 0.98));
  // Beyond the last bound: the last bound.
  proxy::HistogramSnapshot slow;
  slow.count = 10;
  CHECK(histogram_quantile(0.5, slow) == proxy::kLatencyBuckets.back());
}

TEST_CASE("the window gives the rate and quantiles of its last seconds only",
          "[manager][traffic]") {
  TrafficWindow window;
  const auto t0 = Clock::time_point(1h);
  proxy::HistogramSnapshot h;
  h = with(h, 1.0, 1000);  // old, slow traffic
  window.add(t0, h);
  CHECK(window.requests_per_second() == 0);
  for (int s = 1; s <= 10; ++s) {
    h = with(h, 0.001, 100);  // then 100 fast requests a second
    window.add(t0 + std::chrono::seconds(s), h);
  }
  CHECK(window.requests_per_second() == Approx(100));
  CHECK(window.quantile_seconds(0.99) <= 0.001);
  CHECK(window.total_requests() == 2000);
}
