#include "scrape_checks.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "harness.hpp"

namespace scgi::test {

std::map<std::string, double> monotonic_samples(const std::string& scrape) {
  std::set<std::string> counters;
  std::set<std::string> histograms;
  std::istringstream in(scrape);
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    std::string hash, type, name, kind;
    if (!(words >> hash >> type >> name >> kind) || hash != "#" || type != "TYPE") continue;
    if (kind == "counter") counters.insert(name);
    if (kind == "histogram") histograms.insert(name);
  }
  const auto monotonic = [&](const std::string& name) {
    if (counters.contains(name)) return true;
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (name.ends_with(suffix) &&
          histograms.contains(name.substr(0, name.size() - std::strlen(suffix))))
        return true;
    return false;
  };
  std::map<std::string, double> samples;
  in.clear();
  in.seekg(0);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    const std::string series = line.substr(0, space);
    if (!monotonic(series.substr(0, series.find('{')))) continue;
    samples[series] = std::stod(line.substr(space + 1));
  }
  return samples;
}

std::vector<std::string> went_down(const std::string& before, const std::string& after) {
  const auto then = monotonic_samples(before);
  const auto now = monotonic_samples(after);
  std::vector<std::string> out;
  for (const char* needed : {"scgi_requests_total{", "scgi_request_outcomes_total{",
                             "scgi_request_duration_seconds_count{"})
    if (std::none_of(then.begin(), then.end(),
                     [&](const auto& sample) { return sample.first.starts_with(needed); }))
      out.push_back(std::string(needed) + "...}: not in the scrape before");
  for (const auto& [series, value] : then) {
    const auto it = now.find(series);
    if (it == now.end())
      out.push_back(series + ": gone (was " + fmt::format("{}", value) + ")");
    else if (it->second < value)
      out.push_back(fmt::format("{}: {} -> {}", series, value, it->second));
  }
  return out;
}

ScrapeLoad::ScrapeLoad(std::uint16_t port, std::chrono::milliseconds pause) {
  thread_ = std::thread([this, port, pause] {
    std::string previous;
    while (!stop_.load()) {
      const std::string scrape = http_get(port, "/metrics");
      ++scrapes_;
      std::vector<std::string> problems;
      if (scrape.rfind("HTTP/1.1 200", 0) != 0)
        problems.push_back("not answered: '" + scrape.substr(0, 40) + "'");
      else if (!previous.empty())
        problems = went_down(previous, scrape);
      if (!problems.empty()) {
        std::lock_guard lock(mutex_);
        for (std::string& problem : problems)
          failures_.push_back(fmt::format("scrape {}: {}", scrapes_.load(), problem));
      } else {
        previous = scrape;
      }
      std::this_thread::sleep_for(pause);
    }
  });
}

void ScrapeLoad::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::vector<std::string> ScrapeLoad::failures() const {
  std::lock_guard lock(mutex_);
  return failures_;
}

}  // namespace scgi::test
