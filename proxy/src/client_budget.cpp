#include "client_budget.hpp"

#include <algorithm>

namespace scgi::proxy {

void ClientBudget::begin_wait(Clock::time_point now) {
  if (waits_++ == 0) since_ = now;
}

void ClientBudget::end_wait(Clock::time_point now) {
  if (waits_ == 0) return;
  if (--waits_ == 0) waited_ += now - since_;
}

ClientBudget::Clock::duration ClientBudget::waited(Clock::time_point now) const {
  return waits_ > 0 ? waited_ + (now - since_) : waited_;
}

ClientBudget::Clock::duration ClientBudget::allowed() const {
  if (min_rate_ == 0) return Clock::duration::max();
  // In double seconds first: bytes × 1e9 would overflow for large transfers.
  constexpr double kMaxSeconds = 100.0 * 365 * 24 * 3600;
  const double earned_seconds =
      std::min(static_cast<double>(bytes_moved()) / static_cast<double>(min_rate_), kMaxSeconds);
  return gap_ +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(earned_seconds));
}

ClientBudget::Clock::time_point ClientBudget::deadline(Clock::time_point now) const {
  const Clock::time_point gap_end = now + gap_;
  if (min_rate_ == 0) return gap_end;
  const Clock::duration left = allowed() - waited(now);
  if (left <= Clock::duration::zero()) return now;
  return left < gap_ ? now + left : gap_end;
}

bool ClientBudget::exhausted(Clock::time_point now) const {
  return min_rate_ != 0 && waited(now) >= allowed();
}

}  // namespace scgi::proxy
