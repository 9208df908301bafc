#include "balancer.hpp"

namespace scgi::proxy {

std::optional<std::size_t> choose_least_busy(std::span<const Candidate> candidates,
                                             std::size_t rotation) {
  const std::size_t count = candidates.size();
  std::optional<std::size_t> best;
  for (std::size_t step = 0; step < count; ++step) {
    const std::size_t index = (rotation + step) % count;
    const Candidate& c = candidates[index];
    if (!c.eligible || c.in_flight >= c.concurrency) continue;
    if (!best) {
      best = index;
      continue;
    }
    // Compare in_flight/concurrency exactly: a/b < c/d  <=>  a*d < c*b.
    const Candidate& b = candidates[*best];
    const std::uint64_t mine = std::uint64_t{c.in_flight} * b.concurrency;
    const std::uint64_t theirs = std::uint64_t{b.in_flight} * c.concurrency;
    if (mine < theirs) best = index;
  }
  return best;
}

}  // namespace scgi::proxy
