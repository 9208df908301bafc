#include <catch2/catch.hpp>

#include "config_diff.hpp"

#include <csignal>
#include <functional>
#include <map>
#include <string_view>

#include "scgi/pool_keys.hpp"

using namespace scgi;
using namespace scgi::manager;

namespace {

Config two_pools() {
  Config config;
  PoolConfig app;
  app.name = "app";
  app.command = {"app"};
  PoolConfig api = app;
  api.name = "api";
  config.pools = {app, api};
  return config;
}

}  // namespace

TEST_CASE("a reload that changes nothing says so", "[manager][reload]") {
  CHECK(describe_changes(two_pools(), two_pools()).empty());
}

TEST_CASE("a reload names pools added and removed, and sizes and keys changed",
          "[manager][reload]") {
  const Config before = two_pools();
  Config after = before;
  after.pools.erase(after.pools.begin() + 1);  // api removed
  PoolConfig jobs = before.pools[0];
  jobs.name = "jobs";
  after.pools.push_back(jobs);
  after.pools[0].min_workers = 2;
  after.pools[0].max_workers = 8;
  after.pools[0].queue_timeout = Milliseconds(1000);
  CHECK(describe_changes(before, after) ==
        std::vector<std::string>{"pool app: workers 4 → 2-8; queue_timeout changed",
                                 "pool jobs: added",
                                 "pool api: removed: its workers drain and stop"});
}

TEST_CASE("only a new command, env, cwd, user, group or socket needs new workers",
          "[manager][reload]") {
  const PoolConfig before = two_pools().pools[0];
  PoolConfig after = before;
  after.max_requests = 10;
  after.concurrency = 4;
  CHECK_FALSE(needs_new_workers(before, after));
  CHECK(changed_pool_keys(before, after) ==
        std::vector<std::string>{"concurrency", "max_requests"});
  after.env["APP_ENV"] = "staging";
  CHECK(needs_new_workers(before, after));
  Config a = two_pools();
  Config b = a;
  b.pools[0].command = {"app", "--v2"};
  CHECK(describe_changes(a, b) ==
        std::vector<std::string>{"pool app: command changed: rolling restart onto it"});
}

TEST_CASE("a new listen_mode or listen_group is reported, without new workers",
          "[manager][reload]") {
  const PoolConfig before = two_pools().pools[0];
  PoolConfig after = before;
  after.listen_mode = 0600;
  after.listen_group = "www-data";
  CHECK_FALSE(needs_new_workers(before, after));
  CHECK(changed_pool_keys(before, after) ==
        std::vector<std::string>{"listen_mode", "listen_group"});
}

namespace {

// A change of each compared pool key's value, alone.
const std::map<std::string_view, std::function<void(PoolConfig&)>>& one_change_per_key() {
  static const std::map<std::string_view, std::function<void(PoolConfig&)>> changes{
      {"listen",
       [](PoolConfig& p) {
         p.listen = Address{Address::Kind::tcp, "127.0.0.1", 4000, {}};
       }},
      {"listen_mode", [](PoolConfig& p) { p.listen_mode = 0600; }},
      {"listen_group", [](PoolConfig& p) { p.listen_group = "www-data"; }},
      {"command", [](PoolConfig& p) { p.command.push_back("--v2"); }},
      {"socket", [](PoolConfig& p) { p.socket = SocketMode::port; }},
      {"workers",
       [](PoolConfig& p) {
         p.min_workers = 2;
         p.max_workers = 2;
       }},
      {"min_workers", [](PoolConfig& p) { p.min_workers = 1; }},
      {"max_workers", [](PoolConfig& p) { p.max_workers = 8; }},
      {"concurrency", [](PoolConfig& p) { p.concurrency = 2; }},
      {"queue_size", [](PoolConfig& p) { p.queue_size = 1; }},
      {"queue_timeout", [](PoolConfig& p) { p.queue_timeout = Milliseconds(1); }},
      {"client_timeout", [](PoolConfig& p) { p.client_timeout = Milliseconds(1); }},
      {"connect_timeout", [](PoolConfig& p) { p.connect_timeout = Milliseconds(1); }},
      {"request_timeout", [](PoolConfig& p) { p.request_timeout = Milliseconds(1); }},
      {"max_header", [](PoolConfig& p) { p.max_header_bytes = 100; }},
      {"max_body", [](PoolConfig& p) { p.max_body_bytes = 100; }},
      {"body_buffer", [](PoolConfig& p) { p.body_buffer_bytes = 100; }},
      {"response_buffer", [](PoolConfig& p) { p.response_buffer_bytes = 100; }},
      {"response_spill", [](PoolConfig& p) { p.response_spill_bytes = 100; }},
      {"client_min_rate", [](PoolConfig& p) { p.client_min_rate = 100; }},
      {"queue_time", [](PoolConfig& p) { p.queue_time = false; }},
      {"keep_request_start", [](PoolConfig& p) { p.keep_request_start = true; }},
      {"slow_request_threshold",
       [](PoolConfig& p) { p.slow_request_threshold = Milliseconds(1'000); }},
      {"slow_request_signal", [](PoolConfig& p) { p.slow_request_signal = SIGUSR1; }},
      {"create_traceparent", [](PoolConfig& p) { p.create_traceparent = true; }},
      {"max_requests", [](PoolConfig& p) { p.max_requests = 100; }},
      {"max_lifetime", [](PoolConfig& p) { p.max_lifetime = Milliseconds(1); }},
      {"max_rss", [](PoolConfig& p) { p.max_rss_bytes = 100; }},
      {"cwd", [](PoolConfig& p) { p.cwd = "/srv"; }},
      {"env", [](PoolConfig& p) { p.env["APP_ENV"] = "staging"; }},
      {"user", [](PoolConfig& p) { p.user = "www-data"; }},
      {"group", [](PoolConfig& p) { p.group = "www-data"; }},
      {"allow_root", [](PoolConfig& p) { p.allow_root = true; }},
      {"stop_timeout", [](PoolConfig& p) { p.stop_timeout = Milliseconds(1); }},
      {"restart_backoff", [](PoolConfig& p) { p.restart_backoff.ceiling = Milliseconds(1'000); }},
      {"ready_timeout", [](PoolConfig& p) { p.ready_timeout = Milliseconds(1); }},
      {"idle_timeout", [](PoolConfig& p) { p.idle_timeout = Milliseconds(1); }},
      {"backends",
       [](PoolConfig& p) {
         p.backends.push_back(Address{Address::Kind::tcp, "127.0.0.1", 5001, {}});
       }},
      {"discover",
       [](PoolConfig& p) {
         p.discover = DnsDiscovery{"app.example", 5000};
       }},
      {"discover_interval", [](PoolConfig& p) { p.discover_interval = Milliseconds(1); }},
      {"resolver",
       [](PoolConfig& p) {
         p.resolver = Address{Address::Kind::tcp, "127.0.0.1", 53, {}};
       }},
  };
  return changes;
}

}  // namespace

TEST_CASE("a reload compares every pool key, and names a key changed alone as itself",
          "[manager][reload]") {
  const PoolConfig before = two_pools().pools[0];
  std::size_t compared = 0;
  for (const PoolKey& key : pool_keys()) {
    INFO(key.name);
    if (key.on_reload == OnReload::identifies) continue;
    REQUIRE(one_change_per_key().count(key.name) == 1);
    PoolConfig after = before;
    one_change_per_key().at(key.name)(after);
    CHECK(changed_pool_keys(before, after) ==
          std::vector<std::string>{std::string(key.reported_as)});
    CHECK(needs_new_workers(before, after) == (key.on_reload == OnReload::rolls));
    ++compared;
  }
  CHECK(compared == one_change_per_key().size());
}

TEST_CASE("a changed name is no changed key: pools are matched by it", "[manager][reload]") {
  const PoolConfig before = two_pools().pools[0];
  PoolConfig after = before;
  after.name = "renamed";
  CHECK(changed_pool_keys(before, after).empty());
}

TEST_CASE("min_workers and max_workers are reported as workers", "[manager][reload]") {
  const PoolConfig before = two_pools().pools[0];
  PoolConfig after = before;
  after.min_workers = 1;
  after.max_workers = 8;
  CHECK(changed_pool_keys(before, after) == std::vector<std::string>{"workers"});
}
