#include "manager_metrics.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <string>

#include "scgi/runtime/metric_families.hpp"
#include "worker_state.hpp"

namespace scgi::manager {
namespace {

using prometheus::MetricType;

constexpr std::array kStates = {WorkerState::starting, WorkerState::ready,   WorkerState::draining,
                                WorkerState::stopping, WorkerState::backoff, WorkerState::stopped};
constexpr std::array<const char*, 4> kRestartReasons = {"exit", "signal", "recycle", "health"};

}  // namespace

std::vector<prometheus::MetricFamily> ManagerMetrics::Collect() const {
  auto workers = metric_family("scgi_workers", "Worker slots, by state.", MetricType::Gauge);
  auto restarts =
      metric_family("scgi_worker_restarts_total",
                    "Workers started again, by why the last one ended.", MetricType::Counter);
  auto memory = metric_family("scgi_worker_resident_memory_bytes",
                              "Resident memory of a worker's process group.", MetricType::Gauge);
  auto cpu =
      metric_family("scgi_worker_cpu_seconds_total",
                    "CPU time (user and system) of a worker's process group.", MetricType::Counter);
  auto failing = metric_family("scgi_pool_failing",
                               "1 while the pool's workers keep failing to start or stay up.",
                               MetricType::Gauge);
  auto limits = metric_family("scgi_pool_workers_limit",
                              "The pool's bounds on its worker count (min_workers, max_workers).",
                              MetricType::Gauge);
  auto slow = metric_family("scgi_slow_requests_total",
                            "Requests that ran past the pool's slow_request_threshold on a worker.",
                            MetricType::Counter);

  for (const control::PoolStatus& pool : status_()) {
    const std::string& name = pool.name;
    // Every state, with 0 when no worker is in it, so a query never misses a series.
    std::map<std::string_view, std::uint32_t> by_state;
    for (const WorkerState state : kStates)
      by_state[manager::name(state)] = 0;
    for (const control::WorkerStatus& worker : pool.workers) {
      const auto counted = by_state.find(worker.state);
      if (counted != by_state.end()) ++counted->second;
    }
    for (const WorkerState state : kStates)
      workers.metric.push_back(
          gauge_metric({{"pool", name}, {"state", std::string(manager::name(state))}},
                       by_state[manager::name(state)]));

    // The documented reasons always; any other the supervisor counts, too.
    for (const char* reason : kRestartReasons) {
      const auto found = pool.restarts.find(reason);
      restarts.metric.push_back(
          counter_metric({{"pool", name}, {"reason", reason}},
                         found == pool.restarts.end() ? 0 : static_cast<double>(found->second)));
    }
    for (const auto& [reason, count] : pool.restarts) {
      if (std::find(kRestartReasons.begin(), kRestartReasons.end(), reason) !=
          kRestartReasons.end())
        continue;
      restarts.metric.push_back(
          counter_metric({{"pool", name}, {"reason", reason}}, static_cast<double>(count)));
    }

    // While a worker is being replaced, it and its successor share an index:
    // one series per index, summing both, so that no series is duplicated.
    std::map<std::uint32_t, control::WorkerStatus> by_index;
    for (const control::WorkerStatus& worker : pool.workers) {
      if (worker.pid == 0) continue;  // no process: nothing to measure
      control::WorkerStatus& sum = by_index[worker.index];
      sum.rss_bytes += worker.rss_bytes;
      sum.cpu_seconds += worker.cpu_seconds;
    }
    for (const auto& [index, usage] : by_index) {
      const std::vector<prometheus::ClientMetric::Label> labels{{"pool", name},
                                                                {"worker", std::to_string(index)}};
      memory.metric.push_back(gauge_metric(labels, static_cast<double>(usage.rss_bytes)));
      cpu.metric.push_back(counter_metric(labels, usage.cpu_seconds));
    }

    failing.metric.push_back(gauge_metric({{"pool", name}}, pool.failing ? 1 : 0));
    slow.metric.push_back(
        counter_metric({{"pool", name}}, static_cast<double>(pool.slow_requests)));
    limits.metric.push_back(gauge_metric({{"bound", "min"}, {"pool", name}}, pool.min_workers));
    limits.metric.push_back(gauge_metric({{"bound", "max"}, {"pool", name}}, pool.max_workers));
  }
  return {std::move(workers), std::move(restarts), std::move(memory), std::move(cpu),
          std::move(failing), std::move(limits),   std::move(slow)};
}

}  // namespace scgi::manager
