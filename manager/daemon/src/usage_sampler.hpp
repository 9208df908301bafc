// What each worker costs (memory, CPU), for every pool from one pass over
// /proc at most once per period. Reading /proc once per worker made an idle
// manager's cost grow with workers × processes (500 workers: most of a core).
// Control thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>

#include "process_stats.hpp"

namespace scgi::manager {

class UsageSampler {
 public:
  using Clock = std::chrono::steady_clock;

  explicit UsageSampler(Clock::duration period = std::chrono::seconds(1)) : period_(period) {}

  // The usage of process group `pgid` (a worker and what it forked) as of the
  // latest pass, made now when the last one is older than the period; nullopt
  // when no process was in the group then.
  std::optional<ProcessUsage> group(pid_t pgid, Clock::time_point now);

 private:
  Clock::duration period_;
  std::optional<Clock::time_point> taken_at_;
  GroupUsage groups_;
  bool failing_ = false;
};

}  // namespace scgi::manager
