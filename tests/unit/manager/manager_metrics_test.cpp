#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "manager_metrics.hpp"

using scgi::control::PoolStatus;
using scgi::control::WorkerStatus;
using scgi::manager::ManagerMetrics;

namespace {

WorkerStatus worker(std::uint32_t index, long pid, std::string state, std::uint64_t rss,
                    double cpu) {
  WorkerStatus status;
  status.index = index;
  status.pid = pid;
  status.state = std::move(state);
  status.wanted = "up";
  status.rss_bytes = rss;
  status.cpu_seconds = cpu;
  return status;
}

// Two pools: "app" (dynamic, healthy, some restarts) and "batch" (fixed, failing, no restarts).
std::vector<PoolStatus> scripted_snapshot() {
  PoolStatus app;
  app.name = "app";
  app.min_workers = 2;
  app.max_workers = 8;
  app.restarts = {{"exit", 3}, {"recycle", 5}};
  app.slow_requests = 7;
  app.workers = {worker(0, 101, "ready", 50'000'000, 1.5), worker(1, 102, "ready", 60'000'000, 2),
                 worker(2, 103, "draining", 70'000'000, 0.25), worker(3, 0, "backoff", 0, 0)};
  PoolStatus batch;
  batch.name = "batch";
  batch.failing = true;
  batch.min_workers = 1;
  batch.max_workers = 1;
  batch.workers = {worker(0, 0, "backoff", 0, 0)};
  return {app, batch};
}

std::string scrape(const ManagerMetrics& metrics) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, metrics.Collect());
  return out.str();
}

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("manager metrics: every family, label and value from a status snapshot",
          "[manager][metrics]") {
  const ManagerMetrics metrics(scripted_snapshot);
  const auto families = metrics.Collect();
  REQUIRE(families.size() == 7);
  CHECK(families[0].name == "scgi_workers");
  CHECK(families[0].type == prometheus::MetricType::Gauge);
  CHECK(families[1].name == "scgi_worker_restarts_total");
  CHECK(families[1].type == prometheus::MetricType::Counter);
  CHECK(families[2].name == "scgi_worker_resident_memory_bytes");
  CHECK(families[3].name == "scgi_worker_cpu_seconds_total");
  CHECK(families[3].type == prometheus::MetricType::Counter);
  CHECK(families[4].name == "scgi_pool_failing");
  CHECK(families[5].name == "scgi_pool_workers_limit");
  CHECK(families[6].name == "scgi_slow_requests_total");
  CHECK(families[6].type == prometheus::MetricType::Counter);

  const std::string text = scrape(metrics);
  INFO(text);
  // Every state of every pool, 0 where no worker is in it.
  for (const auto& [pool, state, count] :
       std::vector<std::tuple<std::string, std::string, int>>{{"app", "starting", 0},
                                                              {"app", "ready", 2},
                                                              {"app", "draining", 1},
                                                              {"app", "stopping", 0},
                                                              {"app", "backoff", 1},
                                                              {"app", "stopped", 0},
                                                              {"batch", "starting", 0},
                                                              {"batch", "ready", 0},
                                                              {"batch", "backoff", 1},
                                                              {"batch", "stopped", 0}})
    CHECK(has_line(text, "scgi_workers{pool=\"" + pool + "\",state=\"" + state + "\"} " +
                             std::to_string(count)));
  // Every documented reason, 0 when the snapshot has none.
  CHECK(has_line(text, R"(scgi_worker_restarts_total{pool="app",reason="exit"} 3)"));
  CHECK(has_line(text, R"(scgi_worker_restarts_total{pool="app",reason="signal"} 0)"));
  CHECK(has_line(text, R"(scgi_worker_restarts_total{pool="app",reason="recycle"} 5)"));
  CHECK(has_line(text, R"(scgi_worker_restarts_total{pool="app",reason="health"} 0)"));
  CHECK(has_line(text, R"(scgi_worker_restarts_total{pool="batch",reason="exit"} 0)"));
  // Per worker, only those with a process.
  CHECK(has_line(text, R"(scgi_worker_resident_memory_bytes{pool="app",worker="0"} 50000000)"));
  CHECK(has_line(text, R"(scgi_worker_resident_memory_bytes{pool="app",worker="2"} 70000000)"));
  CHECK(has_line(text, R"(scgi_worker_cpu_seconds_total{pool="app",worker="0"} 1.5)"));
  CHECK(has_line(text, R"(scgi_worker_cpu_seconds_total{pool="app",worker="2"} 0.25)"));
  CHECK(text.find(R"(worker="3")") == std::string::npos);
  CHECK(text.find(R"(scgi_worker_cpu_seconds_total{pool="batch")") == std::string::npos);
  CHECK(has_line(text, R"(scgi_pool_failing{pool="app"} 0)"));
  CHECK(has_line(text, R"(scgi_slow_requests_total{pool="app"} 7)"));
  CHECK(has_line(text, R"(scgi_slow_requests_total{pool="batch"} 0)"));
  CHECK(has_line(text, R"(scgi_pool_failing{pool="batch"} 1)"));
  CHECK(has_line(text, R"(scgi_pool_workers_limit{bound="min",pool="app"} 2)"));
  CHECK(has_line(text, R"(scgi_pool_workers_limit{bound="max",pool="app"} 8)"));
  CHECK(has_line(text, R"(scgi_pool_workers_limit{bound="max",pool="batch"} 1)"));
  CHECK(has_line(text, "# TYPE scgi_worker_restarts_total counter"));
  CHECK(has_line(text, "# TYPE scgi_workers gauge"));
}

TEST_CASE("manager metrics: a restart reason beyond the documented ones is shown too",
          "[manager][metrics]") {
  const ManagerMetrics metrics([] {
    PoolStatus pool;
    pool.name = "app";
    pool.restarts = {{"signal", 1}, {"start_failed", 4}};
    return std::vector<PoolStatus>{pool};
  });
  const std::string text = scrape(metrics);
  INFO(text);
  CHECK(has_line(text, R"(scgi_worker_restarts_total{pool="app",reason="signal"} 1)"));
  CHECK(has_line(text, R"(scgi_worker_restarts_total{pool="app",reason="start_failed"} 4)"));
  CHECK(has_line(text, R"(scgi_workers{pool="app",state="ready"} 0)"));
}

TEST_CASE("manager metrics: no pools, no series, and still a valid scrape", "[manager][metrics]") {
  const ManagerMetrics metrics([] { return std::vector<PoolStatus>{}; });
  for (const auto& family : metrics.Collect())
    CHECK(family.metric.empty());
}

TEST_CASE("manager metrics pass promtool's lint", "[manager][metrics]") {
  if (!std::filesystem::exists("/usr/bin/promtool")) {
    WARN("promtool is not installed (scripts/install-deps.sh test): lint skipped");
    return;
  }
  const auto file = std::filesystem::temp_directory_path() /
                    ("scgi_manager_metrics_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(file) << scrape(ManagerMetrics(scripted_snapshot));
  const std::string command = "/usr/bin/promtool check metrics < " + file.string() + " 2>&1";
  std::string output;
  FILE* promtool = ::popen(command.c_str(), "r");
  REQUIRE(promtool != nullptr);
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, promtool) != nullptr)
    output += buffer;
  const int status = ::pclose(promtool);
  std::filesystem::remove(file);
  INFO(output);
  CHECK(status == 0);
}
