// The proxy's Prometheus metrics (DESIGN.md's table), built at scrape time
// from the pools' per-thread statistics and live state. Nothing here runs on
// the request path.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <memory>
#include <vector>

namespace scgi::proxy {

class Pool;

class ProxyMetrics : public prometheus::Collectable {
 public:
  using PoolLister = std::function<std::vector<std::shared_ptr<Pool>>()>;
  explicit ProxyMetrics(PoolLister pools) : pools_(std::move(pools)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  PoolLister pools_;
};

}  // namespace scgi::proxy
