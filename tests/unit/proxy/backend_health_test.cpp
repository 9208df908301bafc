#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <memory>

#include "health/recovery_probe.hpp"
#include "scgi/proxy/backend.hpp"
#include "scgi/proxy/pool.hpp"

using namespace scgi;
using namespace scgi::proxy;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<Pool> make_pool() {
  PoolConfig config;
  config.name = "test";
  config.kind = PoolKind::backends;
  config.connect_timeout = Milliseconds(1000);
  return std::make_shared<Pool>(config, 1);
}

void mark_down(Backend& backend) {
  for (std::uint32_t i = 0; i < Backend::kFailuresToMarkDown; ++i)
    backend.record_connect_failure();
  REQUIRE_FALSE(backend.up());
}

// Runs the probe to its end (bounded), and says whether it ended.
bool run_probe(asio::io_context& context, const std::shared_ptr<Pool>& pool,
               const std::shared_ptr<Backend>& backend, const std::atomic<bool>& stopping) {
  bool ended = false;
  asio::co_spawn(context, probe_until_up(pool, backend, stopping), [&](std::exception_ptr e) {
    ended = true;
    if (e) std::rethrow_exception(e);
  });
  context.run_for(10s);  // returns as soon as the probe (the only work) ends
  return ended;
}

}  // namespace

TEST_CASE("connect failures in a row mark a backend down, reported once", "[health]") {
  Backend backend("b", {}, 1);
  REQUIRE(backend.up());
  for (std::uint32_t i = 1; i < Backend::kFailuresToMarkDown; ++i) {
    CHECK_FALSE(backend.record_connect_failure());
    CHECK(backend.up());
  }
  CHECK(backend.record_connect_failure());  // the transition, reported by this call only
  CHECK_FALSE(backend.up());
  CHECK_FALSE(backend.record_connect_failure());
  CHECK_FALSE(backend.up());
  CHECK(backend.errors(BackendErrorKind::connect) == Backend::kFailuresToMarkDown + 1);
}

TEST_CASE("a success between failures starts the count again", "[health]") {
  Backend backend("b", {}, 1);
  for (int round = 0; round < 5; ++round) {
    for (std::uint32_t i = 1; i < Backend::kFailuresToMarkDown; ++i)
      CHECK_FALSE(backend.record_connect_failure());
    CHECK_FALSE(backend.record_connect_success());  // it was up: no change to report
  }
  CHECK(backend.up());
}

TEST_CASE("a success marks a down backend up, reported once", "[health]") {
  Backend backend("b", {}, 1);
  mark_down(backend);
  CHECK(backend.record_connect_success());
  CHECK(backend.up());
  CHECK_FALSE(backend.record_connect_success());
  // Up again, the count starts from zero: one failure does not mark it down.
  for (std::uint32_t i = 1; i < Backend::kFailuresToMarkDown; ++i)
    CHECK_FALSE(backend.record_connect_failure());
  CHECK(backend.up());
}

TEST_CASE("the recovery probe marks a down backend up once it accepts", "[health]") {
  asio::io_context context;
  asio::ip::tcp::acceptor acceptor(context, {asio::ip::make_address("127.0.0.1"), 0});
  const auto pool = make_pool();
  const auto backend = pool->add_backend("b", {Endpoint(acceptor.local_endpoint())});
  mark_down(*backend);
  std::atomic<bool> stopping{false};
  CHECK(run_probe(context, pool, backend, stopping));
  CHECK(backend->up());
}

TEST_CASE("the recovery probe ends at stop and leaves a backend that never accepts down",
          "[health]") {
  asio::io_context context;
  asio::ip::tcp::acceptor acceptor(context, {asio::ip::make_address("127.0.0.1"), 0});
  const Endpoint nobody(acceptor.local_endpoint());
  acceptor.close();  // connects to it are refused from now on
  const auto pool = make_pool();
  const auto backend = pool->add_backend("b", {nobody});
  mark_down(*backend);
  std::atomic<bool> stopping{false};
  // Long enough for a few rounds of refused probes.
  asio::steady_timer stop(context, 400ms);
  stop.async_wait([&](asio::error_code) { stopping = true; });
  CHECK(run_probe(context, pool, backend, stopping));
  CHECK_FALSE(backend->up());
}

TEST_CASE("the recovery probe leaves a removed backend alone", "[health]") {
  asio::io_context context;
  asio::ip::tcp::acceptor acceptor(context, {asio::ip::make_address("127.0.0.1"), 0});
  const auto pool = make_pool();
  const auto backend = pool->add_backend("b", {Endpoint(acceptor.local_endpoint())});
  mark_down(*backend);
  pool->remove_backend(backend);
  std::atomic<bool> stopping{false};
  CHECK(run_probe(context, pool, backend, stopping));
  CHECK_FALSE(backend->up());
}
