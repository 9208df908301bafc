#include "usage_sampler.hpp"

#include "scgi/log.hpp"

namespace scgi::manager {

std::optional<ProcessUsage> UsageSampler::group(pid_t pgid, Clock::time_point now) {
  if (!taken_at_ || now - *taken_at_ >= period_) {
    taken_at_ = now;
    auto groups = read_all_group_usage();
    if (groups) {
      groups_ = std::move(groups).value();
      failing_ = false;
    } else {
      groups_.clear();
      if (!failing_) log_warn("cannot read the workers' memory and CPU: {}", groups.error());
      failing_ = true;  // said once, until it works again
    }
  }
  const auto found = groups_.find(pgid);
  if (found == groups_.end()) return std::nullopt;
  return found->second;
}

}  // namespace scgi::manager
