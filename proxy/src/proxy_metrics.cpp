#include "proxy_metrics.hpp"

#include <string>

#include "discovery/discovery_stats.hpp"
#include "scgi/proxy/pool.hpp"
#include "scgi/runtime/metric_families.hpp"

namespace scgi::proxy {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

ClientMetric histogram(std::vector<ClientMetric::Label> labels, const HistogramSnapshot& h) {
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum_seconds;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kLatencyBuckets.size(); ++i) {
    cumulative += h.buckets[i];
    m.histogram.bucket.push_back({cumulative, kLatencyBuckets[i]});
  }
  m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
  return m;
}

constexpr const char* kErrorKinds[] = {"connect", "reset", "timeout"};

}  // namespace

std::vector<MetricFamily> ProxyMetrics::Collect() const {
  auto requests = metric_family("scgi_requests_total", "Requests answered, by status code.",
                                MetricType::Counter);
  auto duration =
      metric_family("scgi_request_duration_seconds", "Time from accepting a request to closing it.",
                    MetricType::Histogram);
  auto queue_wait =
      metric_family("scgi_queue_wait_seconds",
                    "Time requests waited in the queue for a free backend.", MetricType::Histogram);
  auto queue_length =
      metric_family("scgi_queue_length", "Requests waiting for a free backend.", MetricType::Gauge);
  auto queue_oldest =
      metric_family("scgi_queue_oldest_seconds", "Age of the request at the head of the queue.",
                    MetricType::Gauge);
  auto queue_capacity =
      metric_family("scgi_queue_capacity", "The queue's limit (queue_size).", MetricType::Gauge);
  auto in_flight = metric_family("scgi_requests_in_flight", "Requests a backend is serving now.",
                                 MetricType::Gauge);
  auto backend_up =
      metric_family("scgi_backend_up", "1 when the backend takes connections (and is not removed).",
                    MetricType::Gauge);
  auto concurrency = metric_family("scgi_backend_concurrency_limit",
                                   "Requests a backend may serve at once.", MetricType::Gauge);
  auto backend_errors =
      metric_family("scgi_backend_errors_total", "Backend failures, by kind.", MetricType::Counter);
  auto rejected = metric_family(
      "scgi_rejected_total", "Requests never sent to a backend, by reason.", MetricType::Counter);
  auto outcomes = metric_family("scgi_request_outcomes_total",
                                "Requests by how they ended: served, or what went wrong first.",
                                MetricType::Counter);
  auto retries = metric_family("scgi_retries_total", "Requests tried again on another backend.",
                               MetricType::Counter);
  auto bytes = metric_family("scgi_bytes_total", "Bytes from (in) and to (out) clients.",
                             MetricType::Counter);

  for (const auto& pool : pools_()) {
    const std::string& name = pool->name();
    const PoolStatsSnapshot stats = pool->stats().snapshot();
    for (std::size_t i = 0; i < stats.requests_by_code.size(); ++i) {
      if (stats.requests_by_code[i] == 0) continue;
      requests.metric.push_back(counter_metric(
          {{"code", std::to_string(kFirstCode + static_cast<int>(i))}, {"pool", name}},
          static_cast<double>(stats.requests_by_code[i])));
    }
    duration.metric.push_back(histogram({{"pool", name}}, stats.request_duration));
    queue_wait.metric.push_back(histogram({{"pool", name}}, stats.queue_wait));
    queue_length.metric.push_back(
        gauge_metric({{"pool", name}}, static_cast<double>(pool->queue_length())));
    queue_oldest.metric.push_back(
        gauge_metric({{"pool", name}}, std::chrono::duration<double>(pool->oldest_wait()).count()));
    queue_capacity.metric.push_back(
        gauge_metric({{"pool", name}}, static_cast<double>(pool->settings()->queue_size)));
    for (std::size_t i = 0; i < kRejectReasons.size(); ++i)
      rejected.metric.push_back(counter_metric({{"pool", name}, {"reason", kRejectReasons[i]}},
                                               static_cast<double>(stats.rejected[i])));
    for (std::size_t i = 0; i < kOutcomes.size(); ++i)
      outcomes.metric.push_back(counter_metric({{"outcome", kOutcomes[i]}, {"pool", name}},
                                               static_cast<double>(stats.outcomes[i])));
    retries.metric.push_back(counter_metric({{"pool", name}}, static_cast<double>(stats.retries)));
    bytes.metric.push_back(
        counter_metric({{"direction", "in"}, {"pool", name}}, static_cast<double>(stats.bytes_in)));
    bytes.metric.push_back(counter_metric({{"direction", "out"}, {"pool", name}},
                                          static_cast<double>(stats.bytes_out)));

    for (const BackendSeries& series : pool->backend_series()) {
      const std::vector<ClientMetric::Label> labels{{"backend", series.label}, {"pool", name}};
      if (series.live) {  // a slot with no worker now keeps only its counters
        in_flight.metric.push_back(gauge_metric(labels, series.in_flight));
        backend_up.metric.push_back(gauge_metric(labels, series.up ? 1 : 0));
        concurrency.metric.push_back(gauge_metric(labels, series.concurrency));
      }
      for (std::size_t kind = 0; kind < kBackendErrorKinds; ++kind) {
        auto with_kind = labels;
        with_kind.insert(with_kind.begin() + 1, {"kind", kErrorKinds[kind]});
        backend_errors.metric.push_back(
            counter_metric(with_kind, static_cast<double>(series.errors[kind])));
      }
    }
  }
  std::vector<MetricFamily> families{
      std::move(requests),       std::move(duration),     std::move(queue_wait),
      std::move(queue_length),   std::move(queue_oldest), std::move(queue_capacity),
      std::move(in_flight),      std::move(backend_up),   std::move(concurrency),
      std::move(backend_errors), std::move(rejected),     std::move(outcomes),
      std::move(retries),        std::move(bytes)};
  const auto discover_pools =
      discovery_ ? discovery_()
                 : std::vector<std::pair<std::string, std::shared_ptr<const DiscoveryStats>>>();
  if (discover_pools.empty()) return families;  // no family without a sample

  auto resolutions = metric_family("scgi_discovery_resolutions_total",
                                   "DNS resolutions of a discover pool's name, by result (ok, "
                                   "empty: NXDOMAIN or no record, error: no usable answer).",
                                   MetricType::Counter);
  auto discovered =
      metric_family("scgi_discovered_backends",
                    "Backends a discover pool has from DNS that take new requests (not draining).",
                    MetricType::Gauge);
  for (const auto& [name, stats] : discover_pools) {
    for (std::size_t i = 0; i < kResolutionResults.size(); ++i)
      resolutions.metric.push_back(counter_metric(
          {{"pool", name}, {"result", kResolutionResults[i]}},
          static_cast<double>(stats->resolutions[i].load(std::memory_order_relaxed))));
    discovered.metric.push_back(
        gauge_metric({{"pool", name}}, stats->backends.load(std::memory_order_relaxed)));
  }
  families.push_back(std::move(resolutions));
  families.push_back(std::move(discovered));
  return families;
}

}  // namespace scgi::proxy
