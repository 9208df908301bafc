#include <catch2/catch.hpp>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include <chrono>
#include <memory>
#include <optional>

#include "scgi/runtime/notifier.hpp"

using scgi::Notifier;
using namespace std::chrono_literals;

namespace {

// Runs `wait` as a coroutine on `context` and stores what it returned.
template <class Wait>
void spawn(asio::io_context& context, std::optional<bool>& result, Wait wait) {
  asio::co_spawn(
      context, [&result, wait]() -> asio::awaitable<void> { result = co_await wait(); },
      asio::detached);
}

}  // namespace

TEST_CASE("a waiter wakes when notified and its condition holds", "[notifier]") {
  asio::io_context context;
  Notifier notifier;
  bool ready = false;
  std::optional<bool> result;
  const auto started = Notifier::Clock::now();
  spawn(context, result, [&] { return notifier.wait_until([&] { return ready; }, started + 60s); });
  asio::steady_timer later(context, 20ms);
  later.async_wait([&](auto) {
    notifier.notify();  // not yet: it waits again
    asio::post(context, [&] {
      ready = true;
      notifier.notify();
    });
  });
  context.run_for(10s);
  REQUIRE(result.has_value());
  CHECK(*result);
  CHECK(Notifier::Clock::now() - started < 10s);  // woken, not timed out
}

TEST_CASE("a waiter whose condition never holds returns false at its deadline", "[notifier]") {
  asio::io_context context;
  Notifier notifier;
  std::optional<bool> result;
  spawn(context, result,
        [&] { return notifier.wait_until([] { return false; }, Notifier::Clock::now() + 30ms); });
  context.run_for(10s);
  REQUIRE(result.has_value());
  CHECK_FALSE(*result);
}

TEST_CASE("a condition that already holds returns at once", "[notifier]") {
  asio::io_context context;
  Notifier notifier;
  std::optional<bool> result;
  spawn(context, result, [&] { return notifier.wait_until([] { return true; }, {}); });
  context.run_for(10s);
  REQUIRE(result.has_value());
  CHECK(*result);
}

TEST_CASE("destroying the notifier releases its waiters without their condition", "[notifier]") {
  asio::io_context context;
  auto notifier = std::make_unique<Notifier>();
  bool condition_read_after_destruction = false;
  bool destroyed = false;
  std::optional<bool> result;
  spawn(context, result, [&] {
    return notifier->wait_until(
        [&] {
          if (destroyed) condition_read_after_destruction = true;
          return false;
        },
        Notifier::Clock::time_point::max());
  });
  asio::post(context, [&] {
    notifier.reset();
    destroyed = true;
  });
  context.run_for(10s);
  REQUIRE(result.has_value());
  CHECK_FALSE(*result);
  CHECK_FALSE(condition_read_after_destruction);
}
