#include "scgi/proxy/backend.hpp"

#include <algorithm>

namespace scgi::proxy {

Backend::Backend(std::string name, std::vector<Endpoint> endpoints, std::uint32_t concurrency,
                 std::string label, std::shared_ptr<LabelErrors> label_errors)
    : name_(std::move(name)),
      label_(label.empty() ? name_ : std::move(label)),
      endpoints_(std::move(endpoints)),
      concurrency_(std::max<std::uint32_t>(concurrency, 1)),
      label_errors_(std::move(label_errors)) {}

void Backend::set_concurrency(std::uint32_t concurrency) {
  concurrency_.store(std::max<std::uint32_t>(concurrency, 1), std::memory_order_relaxed);
}

bool Backend::try_reserve() {
  // Sequentially consistent, as the pool's queue hand-off relies on (see pool.cpp).
  std::uint32_t current = in_flight_.load(std::memory_order_seq_cst);
  while (current < concurrency()) {
    if (in_flight_.compare_exchange_weak(current, current + 1, std::memory_order_seq_cst))
      return true;
  }
  return false;
}

std::uint32_t Backend::release() {
  return in_flight_.fetch_sub(1, std::memory_order_seq_cst) - 1;
}

bool Backend::record_connect_failure() {
  count_error(BackendErrorKind::connect);
  const auto failures = consecutive_failures_.fetch_add(1, std::memory_order_acq_rel) + 1;
  return failures >= kFailuresToMarkDown && up_.exchange(false, std::memory_order_acq_rel);
}

bool Backend::record_connect_success() {
  // Called for every request: plain loads first, so the common case writes nothing shared.
  if (consecutive_failures_.load(std::memory_order_relaxed) != 0)
    consecutive_failures_.store(0, std::memory_order_relaxed);
  return !up() && !up_.exchange(true, std::memory_order_acq_rel);
}

void Backend::count_error(BackendErrorKind kind) {
  errors_[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
  if (label_errors_)
    label_errors_->counts[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t Backend::errors(BackendErrorKind kind) const {
  return errors_[static_cast<int>(kind)].load(std::memory_order_relaxed);
}

}  // namespace scgi::proxy
