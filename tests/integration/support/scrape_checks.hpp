// What a scrape of /metrics must keep through an upgrade in place: answered
// every time, and no counter or histogram ever going down.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace scgi::test {

// Every sample of every counter and histogram in a scrape, series -> value:
// the ones Prometheus must never see go down.
std::map<std::string, double> monotonic_samples(const std::string& scrape);

// The counters and histograms that went down, or vanished, from one scrape
// to the next (and the balancer's request counters when `before` lacks
// them); empty when every one continued.
std::vector<std::string> went_down(const std::string& before, const std::string& after);

// Scrapes /metrics on `port` back to back, one connection each, until
// stopped: a scrape not answered with 200, or one where a counter went down
// from the scrape before it, is kept for the report.
class ScrapeLoad {
 public:
  explicit ScrapeLoad(std::uint16_t port,
                      std::chrono::milliseconds pause = std::chrono::milliseconds(20));
  ~ScrapeLoad() { stop(); }
  ScrapeLoad(const ScrapeLoad&) = delete;
  ScrapeLoad& operator=(const ScrapeLoad&) = delete;

  void stop();
  int scrapes() const { return scrapes_.load(); }
  std::vector<std::string> failures() const;

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> scrapes_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> failures_;
  std::thread thread_;
};

}  // namespace scgi::test
