#include <catch2/catch.hpp>

#include "config_diff.hpp"

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
