// A pool's supervisor driven without processes and without waiting: the
// launcher scripts starts, readiness and exits, the clock moves by hand, and
// the pool's real balancer shows what is routed.
#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include <algorithm>
#include <optional>

#include "scripted_pool.hpp"

using namespace scgi;
using namespace scgi::test;
using namespace std::chrono_literals;
using manager::Readiness;

namespace {

constexpr int kExitStatus1 = 1 << 8;  // as waitpid reports exit(1)

PoolConfig pool_of(std::uint32_t workers) {
  PoolConfig pool;
  pool.name = "app";
  pool.kind = PoolKind::command;
  pool.command = {"app"};
  pool.min_workers = pool.max_workers = workers;
  pool.restart_backoff = {.first = Milliseconds(1000), .ceiling = Milliseconds(8000)};
  pool.stop_timeout = Milliseconds(5000);
  return pool;
}

pid_t pid_of(const ScriptedPool& pool, std::uint32_t index) {
  for (const auto& worker : pool.status().workers)
    if (worker.index == index && worker.state != "stopped") return static_cast<pid_t>(worker.pid);
  return 0;
}

// Where `event` is in the launcher's record, or -1.
long position(const ScriptedPool& pool, const std::string& event) {
  const auto& events = pool.launcher.events;
  const auto it = std::find(events.begin(), events.end(), event);
  return it == events.end() ? -1 : it - events.begin();
}

std::string start_of(std::uint32_t index, pid_t pid) {
  return "start " + std::to_string(index) + " " + std::to_string(pid);
}
std::string sigterm_of(pid_t pid) {
  return "signal " + std::to_string(pid) + " " + std::to_string(SIGTERM);
}

}  // namespace

TEST_CASE("supervisor: workers start, become ready and are routed", "[manager][supervisor]") {
  ScriptedPool pool(pool_of(2));
  CHECK(pool.states() == "ready ready");
  CHECK(pool.routed() == 2);
  CHECK(pool.status().state == "running");
}

TEST_CASE("supervisor: a worker that dies waits out its backoff, then starts again",
          "[manager][supervisor]") {
  ScriptedPool pool(pool_of(1));
  const pid_t first = pid_of(pool, 0);
  pool.exit(first, kExitStatus1);
  CHECK(pool.states() == "backoff");
  CHECK(pool.routed() == 0);
  CHECK(pool.status().workers[0].last_exit == "exit status 1");

  pool.advance(999ms);
  CHECK(pool.launcher.last_pid() == first);  // not before restart_backoff
  pool.advance(2ms);
  CHECK(pool.launcher.last_pid() == first + 1);
  CHECK(pool.states() == "ready");
  CHECK(pool.routed() == 1);
  CHECK(pool.status().restarts.at("exit") == 1);

  // A second crash at once: the delay has doubled.
  pool.exit(first + 1, SIGSEGV);
  pool.advance(1500ms);
  CHECK(pool.states() == "backoff");
  pool.advance(600ms);
  CHECK(pool.states() == "ready");
  CHECK(pool.status().restarts.at("signal") == 1);
}

TEST_CASE("supervisor: a start that never gets ready is killed and counted as a failure",
          "[manager][supervisor]") {
  ScriptedPool pool(pool_of(1));
  // Restart it with a probe that times out.
  const pid_t first = pid_of(pool, 0);
  pool.launcher.readiness_script = {Readiness::Outcome::timed_out};
  pool.exit(first, kExitStatus1);
  pool.advance(1001ms);
  const pid_t second = first + 1;
  CHECK(std::count(pool.launcher.signalled.begin(), pool.launcher.signalled.end(),
                   std::pair{second, SIGKILL}) == 1);
  CHECK(pool.states() == "backoff");
  CHECK(pool.status().restarts.at("health") == 1);
}

TEST_CASE("supervisor: a start that fails at once is retried after the backoff",
          "[manager][supervisor]") {
  PoolConfig config = pool_of(1);
  ScriptedPool pool(config);
  pool.launcher.fail_starts = 1;
  pool.exit(pid_of(pool, 0), kExitStatus1);
  pool.advance(1001ms);  // the restart fails: no such file
  CHECK(pool.states() == "backoff");
  CHECK(pool.status().workers[0].last_exit == "app[0]: could not start: no such file");
  pool.advance(2001ms);  // the doubled delay
  CHECK(pool.states() == "ready");
}

TEST_CASE(
    "supervisor: recycling starts the replacement first and drains the old worker once "
    "it is ready",
    "[manager][supervisor]") {
  PoolConfig config = pool_of(1);
  config.max_lifetime = Milliseconds(10'000);
  ScriptedPool pool(config);
  const pid_t old = pid_of(pool, 0);
  pool.advance(9'000ms);  // jitter keeps it within [9 s, 11 s]
  CHECK(pool.launcher.last_pid() == old);
  pool.advance(2'100ms);
  const pid_t successor = old + 1;
  REQUIRE(pool.launcher.last_pid() == successor);
  // The successor started before the old one was asked to stop, and the old
  // one has stopped: one worker, routed, with the slot's restart counted.
  CHECK(position(pool, start_of(0, successor)) < position(pool, sigterm_of(old)));
  CHECK(position(pool, sigterm_of(old)) >= 0);
  CHECK(pool.states() == "ready");
  CHECK(pid_of(pool, 0) == successor);
  CHECK(pool.routed() == 1);
  CHECK(pool.status().restarts.at("recycle") == 1);
  CHECK(pool.status().workers[0].restarts == 1);
}

TEST_CASE(
    "supervisor: a replacement that fails to get ready is given up and the old worker "
    "keeps serving",
    "[manager][supervisor]") {
  PoolConfig config = pool_of(1);
  config.max_lifetime = Milliseconds(10'000);
  ScriptedPool pool(config);
  const pid_t old = pid_of(pool, 0);
  pool.launcher.readiness_script = {Readiness::Outcome::timed_out};
  pool.advance(11'100ms);
  const pid_t successor = old + 1;
  REQUIRE(pool.launcher.last_pid() == successor);
  CHECK(std::count(pool.launcher.signalled.begin(), pool.launcher.signalled.end(),
                   std::pair{successor, SIGKILL}) == 1);
  CHECK(position(pool, sigterm_of(old)) == -1);  // never asked to stop
  CHECK(pool.states() == "ready");
  CHECK(pid_of(pool, 0) == old);
  CHECK(pool.routed() == 1);
  // Tried again only after the backoff ceiling.
  pool.advance(7'000ms);
  CHECK(pool.launcher.last_pid() == successor);
  pool.advance(1'200ms);
  CHECK(pool.launcher.last_pid() == successor + 1);
}

TEST_CASE("supervisor: scaling by hand starts new slots and retires the highest ones",
          "[manager][supervisor]") {
  ScriptedPool pool(pool_of(1));
  REQUIRE(pool.supervisor->scale(6));
  pool.settle();
  // A few starts per tick: the rest follow on the next ticks.
  CHECK(pool.status().workers.size() < 6);
  pool.advance(300ms);
  CHECK(pool.states() == "ready ready ready ready ready ready");
  CHECK(pool.routed() == 6);

  const pid_t fifth = pid_of(pool, 5);
  REQUIRE(pool.supervisor->scale(2));
  pool.settle();
  CHECK(pool.states() == "ready ready");
  CHECK(pool.routed() == 2);
  CHECK(position(pool, sigterm_of(fifth)) >= 0);
  CHECK(pool.status().target_workers == 2);
}

TEST_CASE(
    "supervisor: a rolling restart replaces one worker at a time, each successor ready "
    "before its old worker drains",
    "[manager][supervisor]") {
  ScriptedPool pool(pool_of(2));
  const pid_t old0 = pid_of(pool, 0);
  const pid_t old1 = pid_of(pool, 1);
  std::optional<Result<std::string>> result;
  std::vector<std::string> steps;
  asio::co_spawn(
      pool.control(),
      [&]() -> asio::awaitable<void> {
        result = co_await pool.supervisor->restart_workers(
            std::nullopt, [&](const std::string& step) { steps.push_back(step); });
      },
      asio::detached);
  pool.settle();
  REQUIRE(result.has_value());
  REQUIRE(*result);
  CHECK(result->value() == "pool app: restarted 2 of 2 worker(s)");

  const pid_t new0 = old1 + 1;
  const pid_t new1 = old1 + 2;
  CHECK(position(pool, start_of(0, new0)) < position(pool, sigterm_of(old0)));
  CHECK(position(pool, sigterm_of(old0)) < position(pool, start_of(1, new1)));
  CHECK(position(pool, start_of(1, new1)) < position(pool, sigterm_of(old1)));
  CHECK(pool.states() == "ready ready");
  CHECK(pool.routed() == 2);
  CHECK(steps.size() == 4);
}

TEST_CASE("supervisor: a worker that ignores SIGTERM gets SIGKILL at stop_timeout",
          "[manager][supervisor]") {
  ScriptedPool pool(pool_of(1));
  const pid_t stubborn = pid_of(pool, 0);
  pool.launcher.ignore_sigterm.insert(stubborn);
  REQUIRE(pool.supervisor->stop_workers(std::nullopt));
  pool.settle();
  CHECK(pool.states() == "stopping");
  pool.advance(4'900ms);
  CHECK(pool.states() == "stopping");
  pool.advance(200ms);
  CHECK(std::count(pool.launcher.signalled.begin(), pool.launcher.signalled.end(),
                   std::pair{stubborn, SIGKILL}) == 1);
  CHECK(pool.states() == "stopped");
  CHECK(pool.routed() == 0);
  CHECK(pool.status().state == "stopped");
  // Stopped by hand: it stays stopped, through any number of ticks.
  pool.advance(60s);
  CHECK(pool.launcher.last_pid() == stubborn);
}

TEST_CASE("supervisor: stop_all returns once every worker has exited", "[manager][supervisor]") {
  ScriptedPool pool(pool_of(3));
  bool stopped = false;
  asio::co_spawn(pool.control(), pool.supervisor->stop_all(),
                 [&](std::exception_ptr e) { stopped = !e; });
  pool.settle();
  CHECK(stopped);
  CHECK(pool.launcher.running.empty());
  CHECK(pool.routed() == 0);
}

TEST_CASE("supervisor: a worker drained by hand stays drained through its replacement",
          "[manager][supervisor]") {
  PoolConfig config = pool_of(1);
  config.max_lifetime = Milliseconds(10'000);
  ScriptedPool pool(config);
  REQUIRE(pool.supervisor->set_drained(0, true));
  pool.settle();
  CHECK(pool.status().workers[0].drained);
  CHECK(pool.routable() == 0);
  pool.advance(11'100ms);  // recycled
  CHECK(pid_of(pool, 0) == pool.launcher.last_pid());
  CHECK(pool.status().workers.size() == 1);
  CHECK(pool.status().workers[0].drained);
  CHECK(pool.routed() == 1);
  CHECK(pool.routable() == 0);
  REQUIRE(pool.supervisor->set_drained(0, false));
  pool.settle();
  CHECK(pool.routable() == 1);
}

TEST_CASE("supervisor: a pool stopped twice at once may be destroyed when the first stop ends",
          "[manager][supervisor]") {
  // A pool a reload removed is still stopping when the shutdown stops it
  // again; the reload's stop destroys it as soon as it ends.
  ScriptedPool pool(pool_of(2));
  int done = 0;
  const auto first_ends_it = [&](std::exception_ptr e) {
    CHECK_FALSE(e);
    if (++done == 1) pool.supervisor.reset();
  };
  asio::co_spawn(pool.control(), pool.supervisor->stop_all(), first_ends_it);
  asio::co_spawn(pool.control(), pool.supervisor->stop_all(), first_ends_it);
  pool.settle();
  CHECK(done == 2);
  CHECK(pool.launcher.running.empty());
}
