#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <thread>

#include "scgi/proxy/pool.hpp"

using namespace scgi;
using namespace scgi::proxy;
using namespace std::chrono_literals;

namespace {

PoolConfig settings(std::uint32_t concurrency, std::uint32_t queue_size,
                    Milliseconds queue_timeout = Milliseconds(5000)) {
  PoolConfig config;
  config.name = "test";
  config.kind = PoolKind::backends;
  config.concurrency = concurrency;
  config.queue_size = queue_size;
  config.queue_timeout = queue_timeout;
  return config;
}

// A connected client socket (and its peer fd, which plays the client).
struct ClientPair {
  explicit ClientPair(asio::io_context& context) : socket(context) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    socket.assign(asio::generic::stream_protocol(AF_UNIX, SOCK_STREAM), fds[0]);
    socket.non_blocking(true);
    peer = fds[1];
  }
  ~ClientPair() {
    if (peer >= 0) ::close(peer);
  }
  Socket socket;
  int peer = -1;
};

struct Waiting {
  std::vector<char> early_body;
  std::uint64_t body_remaining = 0;
};

// Runs acquire() as its own coroutine and stores the result.
void spawn_acquire(asio::io_context& context, Pool& pool, ClientPair& client,
                   std::optional<Acquisition>& out) {
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        Waiting w;
        out = co_await pool.acquire(client.socket, {}, w.early_body, w.body_remaining);
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
}

void run_for(asio::io_context& context, std::chrono::milliseconds duration) {
  context.restart();
  context.run_for(duration);
}

}  // namespace

TEST_CASE("a free slot is granted at once and comes back with the lease", "[pool]") {
  asio::io_context context;
  auto pool = std::make_shared<Pool>(settings(2, 10), 1);
  auto backend = pool->add_backend("b", {});
  ClientPair client(context);
  std::optional<Acquisition> first, second, third;
  spawn_acquire(context, *pool, client, first);
  spawn_acquire(context, *pool, client, second);
  run_for(context, 50ms);
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->outcome == AcquireOutcome::granted);
  CHECK(second->outcome == AcquireOutcome::granted);
  CHECK_FALSE(first->queued);
  CHECK(backend->in_flight() == 2);
  first->lease.reset();
  CHECK(backend->in_flight() == 1);
}

TEST_CASE("waiters are served in arrival order as slots free", "[pool]") {
  asio::io_context context;
  auto pool = std::make_shared<Pool>(settings(1, 10), 1);
  pool->add_backend("b", {});
  ClientPair client(context);
  std::optional<Acquisition> a, b, c;
  spawn_acquire(context, *pool, client, a);
  run_for(context, 20ms);
  spawn_acquire(context, *pool, client, b);
  run_for(context, 20ms);
  spawn_acquire(context, *pool, client, c);
  run_for(context, 20ms);
  REQUIRE(a);
  CHECK_FALSE(b);
  CHECK_FALSE(c);
  CHECK(pool->queue_length() == 2);

  a->lease.reset();
  run_for(context, 20ms);
  REQUIRE(b);
  CHECK(b->outcome == AcquireOutcome::granted);
  CHECK(b->queued);
  CHECK_FALSE(c);
  b->lease.reset();
  run_for(context, 20ms);
  REQUIRE(c);
  CHECK(c->outcome == AcquireOutcome::granted);
  CHECK(pool->queue_length() == 0);
}

TEST_CASE("a full queue refuses at once, a long wait times out", "[pool]") {
  asio::io_context context;
  auto pool = std::make_shared<Pool>(settings(1, 1, Milliseconds(100)), 1);
  pool->add_backend("b", {});
  ClientPair client(context);
  std::optional<Acquisition> holder, waiter, refused;
  spawn_acquire(context, *pool, client, holder);
  spawn_acquire(context, *pool, client, waiter);
  spawn_acquire(context, *pool, client, refused);
  run_for(context, 20ms);
  REQUIRE(refused);
  CHECK(refused->outcome == AcquireOutcome::queue_full);
  CHECK_FALSE(waiter);
  run_for(context, 200ms);
  REQUIRE(waiter);
  CHECK(waiter->outcome == AcquireOutcome::queue_timeout);
  CHECK(waiter->waited >= 90ms);
  CHECK(pool->queue_length() == 0);
}

TEST_CASE("a waiter whose client closes leaves the queue", "[pool]") {
  asio::io_context context;
  auto pool = std::make_shared<Pool>(settings(1, 10), 1);
  pool->add_backend("b", {});
  ClientPair holder_client(context);
  ClientPair leaving(context);
  std::optional<Acquisition> holder, waiter;
  spawn_acquire(context, *pool, holder_client, holder);
  spawn_acquire(context, *pool, leaving, waiter);
  run_for(context, 20ms);
  CHECK_FALSE(waiter);
  ::close(leaving.peer);
  leaving.peer = -1;
  run_for(context, 50ms);
  REQUIRE(waiter);
  CHECK(waiter->outcome == AcquireOutcome::client_closed);
  CHECK(pool->queue_length() == 0);
}

TEST_CASE("body bytes that arrive while queued are kept for forwarding", "[pool]") {
  asio::io_context context;
  auto pool = std::make_shared<Pool>(settings(1, 10), 1);
  pool->add_backend("b", {});
  ClientPair holder_client(context);
  ClientPair client(context);
  std::optional<Acquisition> holder, waiter;
  spawn_acquire(context, *pool, holder_client, holder);
  std::vector<char> early;
  early.reserve(8);
  std::uint64_t remaining = 5;
  asio::co_spawn(
      context,
      [&]() -> asio::awaitable<void> {
        waiter = co_await pool->acquire(client.socket, {}, early, remaining);
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  run_for(context, 20ms);
  REQUIRE(::write(client.peer, "hello", 5) == 5);
  run_for(context, 20ms);
  CHECK_FALSE(waiter);
  CHECK(std::string(early.begin(), early.end()) == "hello");
  CHECK(remaining == 0);
  holder->lease.reset();
  run_for(context, 20ms);
  REQUIRE(waiter);
  CHECK(waiter->outcome == AcquireOutcome::granted);
}

TEST_CASE("nothing routable: all down is hopeless, an empty pool waits", "[pool]") {
  asio::io_context context;
  auto pool = std::make_shared<Pool>(settings(1, 10, Milliseconds(50)), 1);
  ClientPair client(context);
  std::optional<Acquisition> empty_pool;
  spawn_acquire(context, *pool, client, empty_pool);
  run_for(context, 100ms);
  REQUIRE(empty_pool);
  CHECK(empty_pool->outcome == AcquireOutcome::queue_timeout);

  auto backend = pool->add_backend("b", {});
  backend->record_connect_failure();
  backend->record_connect_failure();
  REQUIRE_FALSE(backend->up());
  std::optional<Acquisition> all_down;
  spawn_acquire(context, *pool, client, all_down);
  run_for(context, 20ms);
  REQUIRE(all_down);
  CHECK(all_down->outcome == AcquireOutcome::no_backend);
}

TEST_CASE("a backend that becomes ready serves the queue at once", "[pool]") {
  asio::io_context context;
  auto pool = std::make_shared<Pool>(settings(1, 10), 1);
  ClientPair client(context);
  std::optional<Acquisition> waiter;
  spawn_acquire(context, *pool, client, waiter);
  run_for(context, 20ms);
  CHECK_FALSE(waiter);
  auto backend = pool->add_backend("late", {}, Backend::Membership::draining);
  run_for(context, 20ms);
  CHECK_FALSE(waiter);  // a draining backend takes nothing new
  pool->set_membership(backend, Backend::Membership::ready);
  run_for(context, 20ms);
  REQUIRE(waiter);
  CHECK(waiter->outcome == AcquireOutcome::granted);
}

TEST_CASE("under contention from several threads no slot is lost or doubled", "[pool][threads]") {
  constexpr int kThreads = 3;
  constexpr int kPerThread = 400;
  auto pool = std::make_shared<Pool>(settings(2, 100'000), kThreads + 1);
  std::vector<std::shared_ptr<Backend>> backends;
  for (int i = 0; i < 3; ++i)
    backends.push_back(pool->add_backend("b" + std::to_string(i), {}));
  std::atomic<int> granted{0};
  std::atomic<int> over_limit{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      set_current_shard(static_cast<std::size_t>(t + 1));
      asio::io_context context(1);
      ClientPair client(context);
      for (int i = 0; i < kPerThread; ++i) {
        asio::co_spawn(
            context,
            [&, i]() -> asio::awaitable<void> {
              Waiting w;
              Acquisition got =
                  co_await pool->acquire(client.socket, {}, w.early_body, w.body_remaining);
              if (got.outcome != AcquireOutcome::granted) co_return;
              if (got.lease.backend().in_flight() > got.lease.backend().concurrency()) ++over_limit;
              ++granted;
              asio::steady_timer hold(context, std::chrono::microseconds(50 + i % 200));
              co_await hold.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
            },
            [](std::exception_ptr e) {
              if (e) std::rethrow_exception(e);
            });
      }
      context.run_for(30s);
    });
  }
  for (auto& thread : threads)
    thread.join();
  CHECK(granted == kThreads * kPerThread);
  CHECK(over_limit == 0);
  CHECK(pool->queue_length() == 0);
  for (const auto& backend : backends)
    CHECK(backend->in_flight() == 0);
}

TEST_CASE("ties rotate on a proxy thread, whatever else reads the pool's state", "[pool]") {
  set_current_shard(1);  // a proxy thread: the cached, lock-free path
  auto pool = std::make_shared<Pool>(settings(1, 10), 2);
  auto a = pool->add_backend("a", {});
  auto b = pool->add_backend("b", {});
  int on_a = 0;
  for (int i = 0; i < 10; ++i) {
    pool->settings();  // an exchange reads its settings before it picks
    Lease lease = pool->try_acquire({});
    REQUIRE(lease);
    if (&lease.backend() == a.get()) ++on_a;
  }
  set_current_shard(0);
  CHECK(on_a == 5);
}
