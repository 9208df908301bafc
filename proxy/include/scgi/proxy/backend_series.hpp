// What /metrics says per backend of a pool: one series per label. A fixed or
// discovered backend is labelled by its address. A supervised worker is
// labelled by its slot ("app:3"), which outlives every restart and recycle of
// the worker in it, so a busy pool that recycles often starts no new series;
// two workers of one slot (the old one draining while its replacement
// serves) are added up, and the errors of the workers a slot had before stay
// in its counters, which so never go down.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "scgi/proxy/backend.hpp"

namespace scgi::proxy {

inline constexpr std::size_t kBackendErrorKinds = 3;  // connect, reset, timeout

struct BackendSeries {
  std::string label;
  bool live = false;  // some backend has this label now (else only its counters are left)
  std::uint32_t in_flight = 0;
  bool up = false;
  std::uint32_t concurrency = 0;
  std::array<std::uint64_t, kBackendErrorKinds> errors{};
};

class BackendSeriesBook {
 public:
  // A backend leaves its pool: if it carries a slot label, its error counts
  // are kept for that label.
  void retire(const Backend& backend);
  // The series of `live` (a pool's backends now), with the counts of retired
  // slots, in label order.
  std::vector<BackendSeries> series(const std::vector<std::shared_ptr<Backend>>& live) const;

 private:
  mutable std::mutex mutex_;  // retire() on the control thread, series() on a scrape's
  std::map<std::string, std::array<std::uint64_t, kBackendErrorKinds>> retired_;
};

}  // namespace scgi::proxy
