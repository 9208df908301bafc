// Reload and stop while requests flow: nothing in flight is lost.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

double requests_in_flight(const ProxiedWorkers& pool) {
  return metric_sum(pool.scrape(), "scgi_requests_in_flight");
}

bool in_log(ProxiedWorkers& pool, const std::string& text) {
  return pool.proxy().log().find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("SIGHUP swaps backends under load without a failed request", "[proxy][reload]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"a", "b"}});
  SampleWorker c(dir, "c");
  const Address& listen = pool.listen();

  Process load = start_load(dir, listen, "3s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return outcomes(pool.scrape(), "served") >= 50; }));
  // b leaves, c joins, timeouts change: in-flight requests on b finish.
  dir.write("proxy.toml", pool.config({pool.worker("a").address(), c.address()},
                                      "queue_timeout = \"8s\"\nconcurrency = 2"));
  pool.proxy().signal(SIGHUP);
  REQUIRE(eventually([&] { return in_log(pool, "reload: "); }));
  // The load goes on over a and c.
  const double served_before_c = outcomes(pool.scrape(), "served");
  REQUIRE(eventually([&] { return outcomes(pool.scrape(), "served") >= served_before_c + 50; }));
  // A broken file is reported and the running configuration kept.
  dir.write("proxy.toml", "[[pool]]\nname = \"app\"\nlisten = 42\n");
  pool.proxy().signal(SIGHUP);
  CHECK(eventually([&] { return in_log(pool, "the running configuration stays"); }));

  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  CHECK(report["requests"].get<int>() > 100);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(pool.proxy().running());
  const std::string log = pool.proxy().log();
  CHECK(log.find("reload: ") != std::string::npos);
  CHECK(log.find("proxy.toml:3:10") != std::string::npos);
  // c now serves; b gets nothing new.
  std::map<std::string, int> per_worker;
  for (int i = 0; i < 10; ++i)
    ++per_worker[send_request(listen, get_request("/after")).header("X-Worker-Name")];
  CHECK(per_worker["b"] == 0);
  CHECK(per_worker["c"] > 0);
}

TEST_CASE("SIGTERM stops accepting, finishes requests in flight and exits 0", "[proxy][stop]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  const Address& listen = pool.listen();
  auto slow = std::async(std::launch::async, [&] {
    return send_request(listen, get_request("/slow?sleep_ms=3000"), 20s);
  });
  REQUIRE(eventually([&] { return requests_in_flight(pool) == 1; }));
  pool.proxy().signal(SIGTERM);
  // No longer accepting, while the request is still in flight.
  CHECK(eventually([&] {
    const int fd = connect_to(listen);
    if (fd >= 0) ::close(fd);
    return fd < 0;
  }));
  CHECK(slow.wait_for(0s) == std::future_status::timeout);
  const Response response = slow.get();
  CHECK(response.status() == 200);
  const auto status = pool.proxy().wait(10s);
  REQUIRE(status.has_value());
  CHECK(exited_with(*status, 0));
}

TEST_CASE("SIGTERM ends requests still running at shutdown_timeout", "[proxy][stop]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.proxy_keys = "shutdown_timeout = \"300ms\""});
  const Address& listen = pool.listen();
  auto slow = std::async(std::launch::async, [&] {
    return send_request(listen, get_request("/slow?sleep_ms=5000"), 20s);
  });
  REQUIRE(eventually([&] { return requests_in_flight(pool) == 1; }));
  pool.proxy().signal(SIGTERM);
  const auto status = pool.proxy().wait(10s);
  REQUIRE(status.has_value());
  CHECK(exited_with(*status, 0));
  // Ended as an exchange, not waited out (that would be a 200): answered
  // (nothing had been sent yet), logged, counted.
  CHECK(slow.get().status() == 503);
  CHECK(pool.proxy().log().find("shutdown_timeout") != std::string::npos);
  std::ifstream file(pool.access_log());
  const std::string access((std::istreambuf_iterator<char>(file)),
                           std::istreambuf_iterator<char>());
  INFO(access);
  CHECK(access.find("status=503 outcome=shutdown") != std::string::npos);
}

TEST_CASE("a reload that cannot be applied leaves the access log where it was", "[proxy][reload]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"a"}});
  SampleWorker busy(dir, "busy");  // holds the port the new file asks for
  const std::string moved = (dir.path() / "moved.log").string();
  std::string config = pool.config({pool.worker("a").address()}, "");
  const auto at = config.find(pool.access_log());
  REQUIRE(at != std::string::npos);
  config.replace(at, pool.access_log().size(), moved);
  config += "\n[[pool]]\nname = \"other\"\nlisten = \"" + busy.address().to_string() +
            "\"\nbackends = [\"" + pool.worker("a").address().to_string() + "\"]\n";
  dir.write("proxy.toml", config);
  pool.proxy().signal(SIGHUP);
  REQUIRE(eventually([&] { return in_log(pool, "cannot apply"); }));

  send_request(pool.listen(), get_request("/after-the-rejected-reload"));
  REQUIRE(eventually([&] { return access_log_lines(pool.access_log()).size() == 1; }));
  // Opened while the file was checked, never written to.
  CHECK((!std::filesystem::exists(moved) || std::filesystem::file_size(moved) == 0));
}
