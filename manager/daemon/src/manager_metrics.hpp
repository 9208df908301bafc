// The manager's Prometheus metrics (docs/design.md, "Metrics": workers by state,
// restarts, per-worker memory and CPU, failing pools, pool limits), built at
// scrape time from a status snapshot of every pool.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <vector>

#include "scgi/control_protocol.hpp"

namespace scgi::manager {

class ManagerMetrics : public prometheus::Collectable {
 public:
  // Called from the exposer's scrape threads, not the control thread: the
  // source must be safe to call from there (e.g. copy a snapshot the control
  // thread publishes under a mutex).
  using StatusSource = std::function<std::vector<control::PoolStatus>()>;
  explicit ManagerMetrics(StatusSource status) : status_(std::move(status)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  StatusSource status_;
};

}  // namespace scgi::manager
