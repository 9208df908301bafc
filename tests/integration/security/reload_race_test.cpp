// Security: reload race (see docs/security.md), tried from outside against the
// real binaries. A reload that turns a pool of fixed backends into a pool of
// workers (or back) must leave only the new ones routed, fail no request, and
// change nothing that proxy threads read while they serve (the TSan build of
// this test reports any such race as the manager's exit status).
#include <signal.h>

#include <catch2/catch.hpp>

#include <string>

#include "../support/harness.hpp"

using namespace scgi::test;
using scgi::Address;

namespace {

// X-Request-Count of one request sent straight to a sample worker: how many
// it has answered, this one included.
long answered_by(const Address& worker) {
  const Response response = send_request(worker, get_request("/count"));
  const std::string count = response.header("X-Request-Count");
  return count.empty() ? -1 : std::stol(count);
}

// Rewrites the manager's file from `spec` and sends SIGHUP.
void reload(const TempDir& dir, ManagerProcess& manager, ManagedPool& spec) {
  spec.metrics_port = manager.metrics_port();
  dir.write("scgi.toml", managed_pool_config(spec, manager.control_socket()));
  manager.process().signal(SIGHUP);
}

// Requests the pool has served so far.
double served(const ManagerProcess& manager) {
  return outcomes(manager.scrape(), "served");
}

// Once the manager has taken `backend` out of the pool, the load goes on over
// the workers: its requests in flight there take a few milliseconds
// (sleep_ms=2), so after 100 more served none is left, and from then on none
// may reach it.
bool unrouted(ManagerProcess& manager, const Address& backend) {
  const std::string removed = "backend " + backend.to_string() + " removed";
  if (!eventually([&] { return manager.process().log().find(removed) != std::string::npos; }))
    return false;
  const double at_removal = served(manager);
  return eventually([&] { return served(manager) >= at_removal + 100; });
}

// Requests through the pool's listener come from the sample worker named `name`.
bool served_by(const Address& listen, const std::string& name) {
  return eventually(
      [&] { return send_request(listen, get_request("/")).header("X-Worker-Name") == name; });
}

}  // namespace

TEST_CASE("a reload from fixed backends to workers unroutes the old backend and fails no request",
          "[security][reload]") {
  TempDir dir;
  SampleWorker old_backend(dir, "fixed");
  const Address listen = loopback(free_port());
  ManagedPool spec{.listen = listen, .command = {}, .backends = {old_backend.address()}};
  ManagerProcess manager(dir, spec, 0);
  REQUIRE(served_by(listen, "fixed"));
  Process load = start_load(dir, listen, "10s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return served(manager) >= 50; }));

  spec.backends.clear();
  spec.command = sample_worker_command({"--name", "worker"});
  spec.pool_keys = "workers = 2";
  reload(dir, manager, spec);
  REQUIRE(manager.wait_workers("ready", 2));
  REQUIRE(unrouted(manager, old_backend.address()));
  const long settled = answered_by(old_backend.address());
  CHECK(served_by(listen, "worker"));

  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 300);
  CHECK(report["errors"].get<int>() == 0);
  // Nothing more reached it over the rest of the load.
  CHECK(settled > 0);
  CHECK(answered_by(old_backend.address()) == settled + 1);  // only our own second look
  const int status = manager.process().stop();
  CHECK(describe_status(status) == "exited 0");
}

TEST_CASE("a reload from workers to fixed backends and back stops and unroutes what it replaces",
          "[security][reload]") {
  TempDir dir;
  SampleWorker fixed(dir, "fixed");
  const Address listen = loopback(free_port());
  ManagedPool spec{.listen = listen,
                   .command = sample_worker_command({"--name", "worker"}),
                   .pool_keys = "workers = 2"};
  ManagerProcess manager(dir, spec, 2);
  Process load = start_load(dir, listen, "12s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return served(manager) >= 50; }));

  // Workers → fixed: the fixed backend serves, the workers stop.
  spec.command.clear();
  spec.pool_keys.clear();
  spec.backends = {fixed.address()};
  reload(dir, manager, spec);
  CHECK(eventually([&] { return manager.worker_pids().empty(); }, 15s));
  CHECK(served_by(listen, "fixed"));
  const long before = answered_by(fixed.address());
  const double served_before = served(manager);
  REQUIRE(eventually([&] { return served(manager) >= served_before + 50; }));
  CHECK(answered_by(fixed.address()) > before + 50);  // it carries the load

  // And back: the fixed backend is unrouted once the new workers are ready.
  spec.backends.clear();
  spec.command = sample_worker_command({"--name", "worker"});
  spec.pool_keys = "workers = 2";
  reload(dir, manager, spec);
  CHECK(eventually([&] { return manager.worker_pids().size() == 2; }, 15s));
  REQUIRE(manager.wait_workers("ready", 2));
  REQUIRE(unrouted(manager, fixed.address()));
  const long settled = answered_by(fixed.address());
  CHECK(served_by(listen, "worker"));

  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 300);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(answered_by(fixed.address()) == settled + 1);  // nothing more over the rest of the load
  const int status = manager.process().stop();
  CHECK(describe_status(status) == "exited 0");
}
