#include "scgi/proxy/backend_series.hpp"

#include <algorithm>

namespace scgi::proxy {

std::shared_ptr<LabelErrors> BackendSeriesBook::counters_for(const std::string& label) {
  std::lock_guard lock(mutex_);
  auto& counters = labels_[label];
  if (!counters) counters = std::make_shared<LabelErrors>();
  return counters;
}

void BackendSeriesBook::carry(const std::string& label,
                              const std::array<std::uint64_t, kBackendErrorKinds>& errors) {
  const auto counters = counters_for(label);
  for (std::size_t kind = 0; kind < kBackendErrorKinds; ++kind)
    counters->counts[kind].fetch_add(errors[kind], std::memory_order_relaxed);
}

std::vector<BackendSeries> BackendSeriesBook::series(
    const std::vector<std::shared_ptr<Backend>>& live) const {
  std::map<std::string, BackendSeries> by_label;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [label, counters] : labels_) {
      BackendSeries& series = by_label[label];
      series.label = label;
      for (std::size_t kind = 0; kind < kBackendErrorKinds; ++kind)
        series.errors[kind] = counters->counts[kind].load(std::memory_order_relaxed);
    }
  }
  for (const auto& backend : live) {
    BackendSeries& series = by_label[backend->label()];
    series.label = backend->label();
    series.live = true;
    series.in_flight += backend->in_flight();
    series.up = series.up || backend->up();
    series.concurrency = std::max(series.concurrency, backend->concurrency());
    if (backend->label() != backend->name()) continue;  // a slot's: in its counters already
    for (std::size_t kind = 0; kind < kBackendErrorKinds; ++kind)
      series.errors[kind] += backend->errors(static_cast<BackendErrorKind>(kind));
  }
  std::vector<BackendSeries> out;
  out.reserve(by_label.size());
  for (auto& [label, series] : by_label)
    out.push_back(std::move(series));
  return out;
}

}  // namespace scgi::proxy
