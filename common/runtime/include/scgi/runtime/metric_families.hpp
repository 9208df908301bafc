// Builders for prometheus-cpp's MetricFamily and ClientMetric, for the
// Collectables that assemble their families at scrape time from a snapshot
// (the proxy's metrics, the manager's). Labels are given in name order.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <string>
#include <utility>
#include <vector>

namespace scgi {

inline prometheus::MetricFamily metric_family(std::string name, std::string help,
                                              prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

inline prometheus::ClientMetric gauge_metric(std::vector<prometheus::ClientMetric::Label> labels,
                                             double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  return metric;
}

inline prometheus::ClientMetric counter_metric(std::vector<prometheus::ClientMetric::Label> labels,
                                               double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  return metric;
}

}  // namespace scgi
