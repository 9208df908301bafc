// When a worker is recycled: each process gets its own limits, the pool's
// max_requests and max_lifetime scaled by a factor in [0.9, 1.1] so that
// workers started together are not all replaced together, and the pool's
// max_rss for its whole process group. Pure: the supervisor gives the facts.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <string>

#include "restart_policy.hpp"
#include "scgi/config.hpp"

namespace scgi::manager {

struct RecycleLimits {
  std::uint64_t max_requests = 0;  // 0: no limit
  Milliseconds max_lifetime{0};
  std::uint64_t max_rss_bytes = 0;
};

// The limits of one new process of `pool`.
RecycleLimits limits_for_new_process(const PoolConfig& pool, std::mt19937& random);

struct WorkerFacts {
  std::uint64_t served = 0;  // requests the balancer gave it
  Clock::duration age{};     // since it started
  std::uint64_t rss_bytes = 0;
};

// Why the worker is due for a replacement ("served 1000 requests
// (max_requests)"), or nullopt.
std::optional<std::string> recycle_reason(const WorkerFacts& facts, const RecycleLimits& limits);

}  // namespace scgi::manager
