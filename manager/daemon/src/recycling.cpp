#include "recycling.hpp"

#include <fmt/format.h>

#include "scgi/units.hpp"

namespace scgi::manager {
namespace {

template <class T>
T jittered(T limit, std::mt19937& random) {
  std::uniform_real_distribution<double> factor(0.9, 1.1);
  return static_cast<T>(static_cast<double>(limit) * factor(random));
}

}  // namespace

RecycleLimits limits_for_new_process(const PoolConfig& pool, std::mt19937& random) {
  RecycleLimits limits;
  limits.max_requests = pool.max_requests ? jittered(pool.max_requests, random) : 0;
  limits.max_lifetime =
      Milliseconds(pool.max_lifetime.count() ? jittered(pool.max_lifetime.count(), random) : 0);
  limits.max_rss_bytes = pool.max_rss_bytes;
  return limits;
}

std::optional<std::string> recycle_reason(const WorkerFacts& facts, const RecycleLimits& limits) {
  if (limits.max_requests > 0 && facts.served >= limits.max_requests)
    return fmt::format("served {} requests (max_requests)", facts.served);
  if (limits.max_lifetime.count() > 0 && facts.age >= limits.max_lifetime)
    return fmt::format("ran for {} (max_lifetime)", format_duration(limits.max_lifetime));
  if (limits.max_rss_bytes > 0 && facts.rss_bytes > limits.max_rss_bytes)
    return fmt::format("uses {} bytes of memory (max_rss {})", facts.rss_bytes,
                       limits.max_rss_bytes);
  return std::nullopt;
}

}  // namespace scgi::manager
