#include "scgi/proxy/backend_series.hpp"

#include <algorithm>

namespace scgi::proxy {

void BackendSeriesBook::retire(const Backend& backend) {
  if (backend.label() == backend.name()) return;  // an address: its series ends with it
  std::lock_guard lock(mutex_);
  auto& totals = retired_[backend.label()];
  for (std::size_t kind = 0; kind < kBackendErrorKinds; ++kind)
    totals[kind] += backend.errors(static_cast<BackendErrorKind>(kind));
}

std::vector<BackendSeries> BackendSeriesBook::series(
    const std::vector<std::shared_ptr<Backend>>& live) const {
  std::map<std::string, BackendSeries> by_label;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [label, totals] : retired_) {
      BackendSeries& series = by_label[label];
      series.label = label;
      series.errors = totals;
    }
  }
  for (const auto& backend : live) {
    BackendSeries& series = by_label[backend->label()];
    series.label = backend->label();
    series.live = true;
    series.in_flight += backend->in_flight();
    series.up = series.up || backend->up();
    series.concurrency = std::max(series.concurrency, backend->concurrency());
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
