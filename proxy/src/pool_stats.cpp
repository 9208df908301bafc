#include "scgi/proxy/pool_stats.hpp"

#include <algorithm>

namespace scgi::proxy {
namespace {

thread_local std::size_t t_shard = 0;

void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) {
  // Only this thread writes this shard: a relaxed add never contends.
  counter.fetch_add(by, std::memory_order_relaxed);
}

std::uint64_t read(const std::atomic<std::uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

}  // namespace

void set_current_shard(std::size_t shard) {
  t_shard = shard;
}
std::size_t current_shard() {
  return t_shard;
}

PoolStats::PoolStats(std::size_t shard_count)
    : shards_(new Shard[std::max<std::size_t>(shard_count, 1)]),
      shard_count_(std::max<std::size_t>(shard_count, 1)) {}

PoolStats::Shard& PoolStats::mine() {
  return shards_[t_shard < shard_count_ ? t_shard : 0];
}

void PoolStats::Histogram::observe(std::chrono::nanoseconds value) {
  const double seconds = std::chrono::duration<double>(value).count();
  const auto bucket = std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds) -
                      kLatencyBuckets.begin();
  bump(buckets[static_cast<std::size_t>(bucket)]);
  bump(sum_ns, static_cast<std::uint64_t>(std::max<std::int64_t>(value.count(), 0)));
}

void PoolStats::Histogram::add_to(HistogramSnapshot& out) const {
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i)
    out.buckets[i] += read(buckets[i]);
  std::uint64_t count = 0;
  for (const auto& bucket : buckets)
    count += read(bucket);
  out.count += count;
  out.sum_seconds += static_cast<double>(read(sum_ns)) / 1e9;
}

void PoolStats::count_request(int status, std::chrono::nanoseconds duration) {
  Shard& shard = mine();
  const int code = std::clamp(status, kFirstCode, kLastCode);
  bump(shard.requests_by_code[static_cast<std::size_t>(code - kFirstCode)]);
  shard.request_duration.observe(duration);
}

void PoolStats::observe_queue_wait(std::chrono::nanoseconds waited) {
  mine().queue_wait.observe(waited);
}

void PoolStats::count_rejected(RejectReason reason) {
  bump(mine().rejected[static_cast<std::size_t>(reason)]);
}

void PoolStats::count_outcome(Outcome outcome) {
  bump(mine().outcomes[static_cast<std::size_t>(outcome)]);
}

void PoolStats::count_retry() {
  bump(mine().retries);
}

void PoolStats::add_bytes(std::uint64_t in, std::uint64_t out) {
  Shard& shard = mine();
  if (in != 0) bump(shard.bytes_in, in);
  if (out != 0) bump(shard.bytes_out, out);
}

void PoolStats::carry(const PoolStatsSnapshot& earlier) {
  carried_ = earlier;
}

PoolStatsSnapshot PoolStats::snapshot() const {
  PoolStatsSnapshot out = carried_;
  for (std::size_t s = 0; s < shard_count_; ++s) {
    const Shard& shard = shards_[s];
    for (std::size_t i = 0; i < out.requests_by_code.size(); ++i)
      out.requests_by_code[i] += read(shard.requests_by_code[i]);
    shard.request_duration.add_to(out.request_duration);
    shard.queue_wait.add_to(out.queue_wait);
    for (std::size_t i = 0; i < out.rejected.size(); ++i)
      out.rejected[i] += read(shard.rejected[i]);
    for (std::size_t i = 0; i < out.outcomes.size(); ++i)
      out.outcomes[i] += read(shard.outcomes[i]);
    out.retries += read(shard.retries);
    out.bytes_in += read(shard.bytes_in);
    out.bytes_out += read(shard.bytes_out);
  }
  return out;
}

}  // namespace scgi::proxy
