// Reload and stop while requests flow: nothing in flight is lost.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <sys/wait.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <thread>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

TEST_CASE("SIGHUP swaps backends under load without a failed request", "[proxy][reload]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"a", "b"}});
  SampleWorker c(dir, "c");
  const Address& listen = pool.listen();

  Process load = start_load(dir, listen, "3s", "load.json", {"--query", "sleep_ms=2"});
  std::this_thread::sleep_for(700ms);
  // b leaves, c joins, timeouts change: in-flight requests on b finish.
  dir.write("proxy.toml", pool.config({pool.worker("a").address(), c.address()},
                                      "queue_timeout = \"8s\"\nconcurrency = 2"));
  pool.proxy().signal(SIGHUP);
  std::this_thread::sleep_for(700ms);
  // A broken file is reported and the running configuration kept.
  dir.write("proxy.toml", "[[pool]]\nname = \"app\"\nlisten = 42\n");
  pool.proxy().signal(SIGHUP);

  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  CHECK(report["requests"].get<int>() > 100);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(pool.proxy().running());
  const std::string log = pool.proxy().log();
  CHECK(log.find("reload: ") != std::string::npos);
  CHECK(log.find("the running configuration stays") != std::string::npos);
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
    return send_request(listen, get_request("/slow?sleep_ms=800"), 20s);
  });
  std::this_thread::sleep_for(200ms);
  pool.proxy().signal(SIGTERM);
  std::this_thread::sleep_for(200ms);
  CHECK(connect_to(listen) < 0);  // no longer accepting
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
  std::this_thread::sleep_for(200ms);
  const auto started = std::chrono::steady_clock::now();
  pool.proxy().signal(SIGTERM);
  const auto status = pool.proxy().wait(10s);
  REQUIRE(status.has_value());
  CHECK(exited_with(*status, 0));
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  // Ended as an exchange: answered (nothing had been sent yet), logged, counted.
  CHECK(slow.get().status() == 503);
  CHECK(pool.proxy().log().find("shutdown_timeout") != std::string::npos);
  std::ifstream file(pool.access_log());
  const std::string access((std::istreambuf_iterator<char>(file)),
                           std::istreambuf_iterator<char>());
  INFO(access);
  CHECK(access.find("status=503 outcome=shutdown") != std::string::npos);
}
