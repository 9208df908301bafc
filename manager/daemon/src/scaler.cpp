#include "scaler.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace scgi::manager {

ScaleDecision Scaler::decide(const ScaleInput& in) {
  const bool waiting = in.oldest_wait > std::chrono::nanoseconds(0);
  if (in.target < in.min_workers) return ScaleDecision::grow;
  if (in.oldest_wait >= kGrowWait && in.target < in.max_workers && in.starting < kMaxStarting &&
      in.now - last_growth_ >= kGrowInterval) {
    last_growth_ = in.now;
    spare_ = false;
    return ScaleDecision::grow;
  }
  const std::uint64_t capacity_without_one =
      std::uint64_t{in.target > 0 ? in.target - 1 : 0} * in.concurrency;
  const bool spare = !waiting && in.target > in.min_workers && in.in_flight <= capacity_without_one;
  if (!spare) {
    spare_ = false;
    return ScaleDecision::stay;
  }
  if (!spare_) {
    spare_ = true;
    spare_since_ = in.now;
    return ScaleDecision::stay;
  }
  if (in.now - spare_since_ < idle_timeout_) return ScaleDecision::stay;
  spare_since_ = in.now;  // the next step down needs another idle_timeout
  return ScaleDecision::shrink;
}

std::uint32_t starts_allowed(std::uint32_t missing, std::uint32_t starting) {
  if (starting >= Scaler::kMaxStartingAtOnce) return 0;
  return std::min({missing, Scaler::kStartsPerTick, Scaler::kMaxStartingAtOnce - starting});
}

std::optional<std::string> scale_refusal(const PoolConfig& pool, std::uint32_t max_workers_per_pool,
                                         std::uint32_t workers, std::string_view config_path) {
  if (pool.is_dynamic()) {
    if (workers >= pool.min_workers && workers <= pool.max_workers) return std::nullopt;
    return fmt::format(
        "pool {} grows and shrinks between {} and {} workers: scale it within those, or change "
        "its min_workers/max_workers in {} and run scgictl reload",
        pool.name, pool.min_workers, pool.max_workers, config_path);
  }
  if (workers <= max_workers_per_pool) return std::nullopt;
  return fmt::format(
      "{} workers is more than [manager] max_workers_per_pool ({}): raise it in {} (at most {}) "
      "and run scgictl reload, or scale pool {} to fewer",
      workers, max_workers_per_pool, config_path, kMaxWorkersCeiling, pool.name);
}

}  // namespace scgi::manager
