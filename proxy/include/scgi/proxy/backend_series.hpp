// What /metrics says per backend of a pool: one series per label. A fixed or
// discovered backend is labelled by its address. A supervised worker is
// labelled by its slot ("app:3"), which outlives every restart and recycle of
// the worker in it, so a busy pool that recycles often starts no new series;
// two workers of one slot (the old one draining while its replacement
// serves) are added up, and every worker the slot ever had counts its errors
// into the slot's LabelErrors, even after it left the pool (a request that
// was still in flight on it), so the slot's counters never go down.
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
  // The shared counters of slot label `label`, made on first use: give them
  // to every backend created with that label.
  std::shared_ptr<LabelErrors> counters_for(const std::string& label);
  // The series of `live` (a pool's backends now), with those of slots that
  // have no backend now (counters only), in label order.
  std::vector<BackendSeries> series(const std::vector<std::shared_ptr<Backend>>& live) const;
  // An upgrade's: the label's error counts in the previous image, which its
  // series starts from.
  void carry(const std::string& label, const std::array<std::uint64_t, kBackendErrorKinds>& errors);

 private:
  mutable std::mutex mutex_;  // counters_for() on the control thread, series() on a scrape's
  std::map<std::string, std::shared_ptr<LabelErrors>> labels_;
};

}  // namespace scgi::proxy
