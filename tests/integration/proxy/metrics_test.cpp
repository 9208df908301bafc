// /metrics on a real scrape: every metric of the contract the proxy owns,
// with its labels, and Prometheus's own linter is happy with it.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <filesystem>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

TEST_CASE("the metrics endpoint serves every proxy metric and passes promtool",
          "[proxy][metrics]") {
  if (!std::filesystem::exists("/usr/bin/promtool"))
    FAIL("promtool is not installed: run scripts/install-deps.sh test");
  TempDir dir;
  ProxiedWorkers pool(dir, {.more_backends = {loopback(free_port())}});
  const Address& listen = pool.listen();
  CHECK(send_request(listen, get_request("/ok")).status() == 200);
  CHECK(send_request(listen, get_request("/missing?status=404")).status() == 404);
  CHECK(send_request(listen, "GET / HTTP/1.0\r\n\r\n").status() == 400);

  const std::string response = pool.scrape();
  REQUIRE(response.starts_with("HTTP/1.1 200"));
  const std::string scrape = response.substr(response.find("\r\n\r\n") + 4);

  for (const char* name :
       {"scgi_requests_total", "scgi_request_duration_seconds", "scgi_queue_wait_seconds",
        "scgi_queue_length", "scgi_requests_in_flight", "scgi_backend_up",
        "scgi_backend_errors_total", "scgi_rejected_total", "scgi_retries_total",
        "scgi_queue_oldest_seconds", "scgi_queue_capacity", "scgi_backend_concurrency_limit",
        "scgi_bytes_total", "scgi_request_outcomes_total"}) {
    CAPTURE(name);
    CHECK(scrape.find(fmt::format("# TYPE {} ", name)) != std::string::npos);
  }
  CHECK(metric_value(scrape, R"(scgi_requests_total{code="200",pool="app"})") == 1);
  CHECK(metric_value(scrape, R"(scgi_requests_total{code="404",pool="app"})") == 1);
  CHECK(metric_value(scrape, R"(scgi_requests_total{code="400",pool="app"})") == 1);
  CHECK(metric_value(scrape, R"(scgi_request_duration_seconds_count{pool="app"})") == 3);
  CHECK(metric_value(scrape, R"(scgi_request_duration_seconds_bucket{pool="app",le="+Inf"})") == 3);
  CHECK(metric_value(scrape, R"(scgi_queue_capacity{pool="app"})") == 1024);
  CHECK(metric_value(scrape, fmt::format(R"(scgi_build_info{{program="scgi-proxy",version="{}"}})",
                                         SCGI_VERSION)) == 1);
  // A 404 is served (the backend answered); the HTTP request is refused first.
  CHECK(metric_value(scrape, R"(scgi_request_outcomes_total{outcome="served",pool="app"})") == 2);
  CHECK(metric_value(scrape, R"(scgi_request_outcomes_total{outcome="bad_request",pool="app"})") ==
        1);
  CHECK(metric_value(scrape, R"(scgi_request_outcomes_total{outcome="queue_full",pool="app"})") ==
        0);
  CHECK(metric_value(scrape, fmt::format(R"(scgi_backend_up{{backend="{}",pool="app"}})",
                                         pool.worker("w1").address().to_string())) == 1);

  dir.write("scrape.txt", scrape);
  Process promtool = Process::start(
      {"sh", "-c", "promtool check metrics < " + dir.file("scrape.txt")}, dir.file("promtool.log"));
  const auto status = promtool.wait(30s);
  REQUIRE(status.has_value());
  INFO(promtool.log());
  CHECK(exited_with(*status, 0));
}
