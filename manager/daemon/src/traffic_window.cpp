#include "traffic_window.hpp"

namespace scgi::manager {

double histogram_quantile(double q, const proxy::HistogramSnapshot& histogram) {
  std::uint64_t total = 0;
  for (const std::uint64_t n : histogram.buckets)
    total += n;
  // Observations past the last bound are in `count` but in no bucket.
  const std::uint64_t beyond = histogram.count > total ? histogram.count - total : 0;
  total += beyond;
  if (total == 0) return 0;
  const double rank = q * static_cast<double>(total);
  double seen = 0;
  double lower = 0;
  for (std::size_t i = 0; i < histogram.buckets.size(); ++i) {
    const double in_bucket = static_cast<double>(histogram.buckets[i]);
    const double upper = proxy::kLatencyBuckets[i];
    if (in_bucket > 0 && seen + in_bucket >= rank)
      return lower + (upper - lower) * ((rank - seen) / in_bucket);
    seen += in_bucket;
    lower = upper;
  }
  return proxy::kLatencyBuckets.back();
}

void TrafficWindow::add(Clock::time_point now, const proxy::HistogramSnapshot& durations) {
  samples_.emplace_back(now, durations);
  // Keep one sample at least kSpan old as the base of the differences.
  while (samples_.size() > 2 && now - samples_[1].first >= kSpan)
    samples_.pop_front();
}

proxy::HistogramSnapshot TrafficWindow::difference() const {
  proxy::HistogramSnapshot out;
  if (samples_.size() < 2) return out;
  const auto& [then_time, then] = samples_.front();
  const auto& [now_time, now] = samples_.back();
  for (std::size_t i = 0; i < out.buckets.size(); ++i)
    out.buckets[i] = now.buckets[i] - then.buckets[i];
  out.count = now.count - then.count;
  out.sum_seconds = now.sum_seconds - then.sum_seconds;
  return out;
}

double TrafficWindow::requests_per_second() const {
  if (samples_.size() < 2) return 0;
  const double seconds =
      std::chrono::duration<double>(samples_.back().first - samples_.front().first).count();
  return seconds > 0 ? static_cast<double>(difference().count) / seconds : 0;
}

double TrafficWindow::quantile_seconds(double q) const {
  return histogram_quantile(q, difference());
}

std::uint64_t TrafficWindow::total_requests() const {
  return samples_.empty() ? 0 : samples_.back().second.count;
}

}  // namespace scgi::manager
