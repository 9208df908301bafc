// The proxy's Prometheus metrics (docs/design.md, "Metrics"), built at scrape time
// from the pools' per-thread statistics and live state. Nothing here runs on
// the request path.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace scgi::proxy {

class Pool;
struct DiscoveryStats;

class ProxyMetrics : public prometheus::Collectable {
 public:
  using PoolLister = std::function<std::vector<std::shared_ptr<Pool>>()>;
  // The discover pools, by name (none in scgi-manager).
  using DiscoveryLister =
      std::function<std::vector<std::pair<std::string, std::shared_ptr<const DiscoveryStats>>>()>;
  explicit ProxyMetrics(PoolLister pools, DiscoveryLister discovery = {})
      : pools_(std::move(pools)), discovery_(std::move(discovery)) {}

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  PoolLister pools_;
  DiscoveryLister discovery_;
};

}  // namespace scgi::proxy
