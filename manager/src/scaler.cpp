#include "scgi/manager/scaler.hpp"

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

}  // namespace scgi::manager
