// Least busy, concurrency limits and the FIFO queue, against real workers.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// Sends each request on its own thread, all at once; returns the responses in order.
std::vector<Response> concurrently(const Address& listen, const std::vector<std::string>& uris,
                                   std::chrono::milliseconds stagger = 0ms) {
  std::vector<std::future<Response>> futures;
  for (const std::string& uri : uris) {
    futures.push_back(std::async(std::launch::async, [&listen, uri] {
      return send_request(listen, get_request(uri), 20s);
    }));
    if (stagger > 0ms) std::this_thread::sleep_for(stagger);
  }
  std::vector<Response> responses;
  for (auto& f : futures)
    responses.push_back(f.get());
  return responses;
}

}  // namespace

TEST_CASE("each worker gets at most `concurrency` requests and the rest wait in the queue",
          "[proxy][balancing]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"a", "b"}, .pool_keys = "concurrency = 1"});
  const Address& listen = pool.listen();

  // Six 300 ms requests on two single-request workers: three rounds.
  const auto started = std::chrono::steady_clock::now();
  const auto responses = concurrently(listen, std::vector<std::string>(6, "/slow?sleep_ms=300"));
  const auto took = std::chrono::steady_clock::now() - started;
  std::map<std::string, int> per_worker;
  for (const Response& r : responses) {
    REQUIRE(r.status() == 200);
    ++per_worker[r.header("X-Worker-Name")];
  }
  CHECK(per_worker["a"] == 3);
  CHECK(per_worker["b"] == 3);
  CHECK(took >= 850ms);  // never two at once on a worker

  // The queue, not the workers' backlogs, held the waiting ones.
  REQUIRE(eventually([&] { return access_log_lines(pool.access_log()).size() == 6; }));
  int queued = 0;
  for (const auto& line : access_log_lines(pool.access_log())) {
    if (std::stod(line.at("queue_ms")) >= 250) ++queued;
    CHECK(line.at("outcome") == "served");
  }
  CHECK(queued == 4);
}

TEST_CASE("the least busy worker is chosen, relative to its concurrency", "[proxy][balancing]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"a", "b"}, .pool_keys = "concurrency = 1"});
  const Address& listen = pool.listen();
  // One long request occupies a worker; every short one meanwhile goes to the other.
  auto slow = std::async(std::launch::async, [&] {
    return send_request(listen, get_request("/slow?sleep_ms=1500"), 20s);
  });
  std::this_thread::sleep_for(200ms);
  std::map<std::string, int> per_worker;
  for (int i = 0; i < 10; ++i) {
    const Response r = send_request(listen, get_request("/fast"));
    REQUIRE(r.status() == 200);
    ++per_worker[r.header("X-Worker-Name")];
  }
  const Response slow_response = slow.get();
  REQUIRE(slow_response.status() == 200);
  const std::string busy = slow_response.header("X-Worker-Name");
  CHECK(per_worker[busy] == 0);
  CHECK(per_worker[busy == "a" ? "b" : "a"] == 10);

  // Idle workers share the load: ties rotate.
  per_worker.clear();
  for (int i = 0; i < 20; ++i)
    ++per_worker[send_request(listen, get_request("/fast")).header("X-Worker-Name")];
  CHECK(per_worker["a"] >= 5);
  CHECK(per_worker["b"] >= 5);
}

TEST_CASE("a full queue answers 503 with Retry-After at once", "[proxy][queue]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "queue_size = 1\nqueue_timeout = \"10s\""});
  const Address& listen = pool.listen();
  // One runs, one waits, the third finds the queue full.
  const auto responses =
      concurrently(listen, std::vector<std::string>(3, "/slow?sleep_ms=500"), 100ms);
  CHECK(responses[0].status() == 200);
  CHECK(responses[1].status() == 200);
  CHECK(responses[2].status() == 503);
  CHECK(responses[2].header("Retry-After") == "1");
  CHECK(responses[2].body().find("queue is full") != std::string::npos);
}

TEST_CASE("a request that waits longer than queue_timeout gets 503", "[proxy][queue]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "queue_timeout = \"300ms\""});
  const Address& listen = pool.listen();
  auto slow = std::async(std::launch::async, [&] {
    return send_request(listen, get_request("/slow?sleep_ms=1500"), 20s);
  });
  std::this_thread::sleep_for(100ms);
  const auto started = std::chrono::steady_clock::now();
  const Response waited = send_request(listen, get_request("/fast"));
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(waited.status() == 503);
  CHECK(waited.body().find("queue_timeout") != std::string::npos);
  CHECK(took >= 250ms);
  CHECK(took < 1200ms);
  CHECK(slow.get().status() == 200);
  const std::string scrape = pool.scrape();
  CHECK(metric_value(scrape, R"(scgi_rejected_total{pool="app",reason="queue_timeout"})") == 1);
}

TEST_CASE("a freed slot goes to the oldest waiter, in arrival order", "[proxy][queue]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  const Address& listen = pool.listen();
  // Arrivals 0..4, sent from this one thread 100 ms apart (so their order is
  // certain), each served 200 ms by the single worker: they must finish in order.
  std::vector<int> sockets;
  for (int i = 0; i < 5; ++i) {
    const int fd = connect_to(listen);
    REQUIRE(fd >= 0);
    const std::string request = get_request("/order" + std::to_string(i) + "?sleep_ms=200");
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    sockets.push_back(fd);
    std::this_thread::sleep_for(100ms);
  }
  for (const int fd : sockets) {
    CHECK(read_response(fd, 20s).status() == 200);
    ::close(fd);
  }
  REQUIRE(eventually([&] { return access_log_lines(pool.access_log()).size() == 5; }));
  std::vector<std::string> order;
  for (const auto& line : access_log_lines(pool.access_log()))
    order.push_back(line.at("uri"));
  for (int i = 0; i < 5; ++i)
    CHECK(order[i].starts_with("/order" + std::to_string(i)));
}

TEST_CASE("a client that leaves the queue is never sent to a worker", "[proxy][queue]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  const Address& listen = pool.listen();
  auto slow = std::async(std::launch::async, [&] {
    return send_request(listen, get_request("/slow?sleep_ms=800"), 20s);
  });
  std::this_thread::sleep_for(100ms);
  // Queue one request, then hang up while it waits.
  const int fd = connect_to(listen);
  REQUIRE(fd >= 0);
  const std::string request = get_request("/abandoned");
  REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  std::this_thread::sleep_for(100ms);
  ::close(fd);
  CHECK(slow.get().status() == 200);
  // The next request is served by the worker as its second, not third.
  const Response next = send_request(listen, get_request("/after"));
  CHECK(next.status() == 200);
  CHECK(next.header("X-Request-Count") == "2");
  const std::string scrape = pool.scrape();
  CHECK(metric_value(scrape, R"(scgi_rejected_total{pool="app",reason="client_closed"})") == 1);
}
