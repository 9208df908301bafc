#include "restart_policy.hpp"

#include <algorithm>

namespace scgi::manager {

Milliseconds Backoff::on_failure() {
  Milliseconds delay = limits_.first;
  for (int i = 0; i < failures_ && delay < limits_.ceiling; ++i)
    delay *= 2;
  ++failures_;
  return std::min(delay, limits_.ceiling);
}

void Backoff::on_up(Clock::time_point since, Clock::time_point now) {
  if (now - since >= limits_.ceiling) failures_ = 0;
}

bool FailingDetector::on_failure(Clock::time_point now) {
  failures_.push_back(now);
  while (!failures_.empty() && now - failures_.front() > kWindow)
    failures_.pop_front();
  const bool was = failing_;
  if (static_cast<int>(failures_.size()) >= kFailures) failing_ = true;
  return failing_ != was;
}

bool FailingDetector::on_up(Clock::time_point since, Clock::time_point now) {
  if (now - since < kStayedUp) return false;
  failures_.clear();
  const bool was = failing_;
  failing_ = false;
  return failing_ != was;
}

}  // namespace scgi::manager
