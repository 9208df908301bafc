// Least busy, concurrency limits and the FIFO queue, against real workers.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <map>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// GET `uri` on a thread of its own; the response when it comes.
std::future<Response> send_async(const Address& listen, const std::string& uri) {
  return std::async(std::launch::async,
                    [&listen, uri] { return send_request(listen, get_request(uri), 20s); });
}

// The requests the proxy holds now: in flight on a backend, or in the queue.
double held(const ProxiedWorkers& pool) {
  const std::string scrape = pool.scrape();
  return metric_sum(scrape, "scgi_requests_in_flight") + queue_length(scrape);
}

}  // namespace

TEST_CASE("each worker gets at most `concurrency` requests and the rest wait in the queue",
          "[proxy][balancing]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"a", "b"}, .pool_keys = "concurrency = 1"});
  const Address& listen = pool.listen();

  // Six slow requests at once on two single-request workers: one on each, and
  // the other four in the proxy's queue, not in the workers' backlogs.
  std::vector<std::future<Response>> responses;
  for (int i = 0; i < 6; ++i)
    responses.push_back(send_async(listen, "/slow?sleep_ms=1000"));
  CHECK(eventually([&] {
    const std::string scrape = pool.scrape();
    return in_flight(scrape, pool.worker("a").address()) == 1 &&
           in_flight(scrape, pool.worker("b").address()) == 1 && queue_length(scrape) == 4;
  }));
  std::map<std::string, int> per_worker;
  for (auto& response : responses) {
    const Response r = response.get();
    REQUIRE(r.status() == 200);
    ++per_worker[r.header("X-Worker-Name")];
  }
  CHECK(per_worker["a"] == 3);
  CHECK(per_worker["b"] == 3);

  // Each waited in the queue or not at all: two went straight to a worker.
  REQUIRE(eventually([&] { return access_log_lines(pool.access_log()).size() == 6; }));
  int queued = 0;
  for (const auto& line : access_log_lines(pool.access_log())) {
    if (std::stod(line.at("queue_ms")) > 0) ++queued;
    CHECK(line.at("outcome") == "served");
  }
  CHECK(queued == 4);
}

TEST_CASE("the least busy worker is chosen, relative to its concurrency", "[proxy][balancing]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"a", "b"}, .pool_keys = "concurrency = 1"});
  const Address& listen = pool.listen();
  // One long request occupies a worker; every short one meanwhile goes to the other.
  auto slow = send_async(listen, "/slow?sleep_ms=1500");
  REQUIRE(eventually([&] { return held(pool) == 1; }));
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
  // One runs, one waits, the third finds the queue full and is answered while
  // the first still runs.
  auto running = send_async(listen, "/slow?sleep_ms=1000");
  REQUIRE(eventually([&] { return held(pool) == 1; }));
  auto waiting = send_async(listen, "/slow?sleep_ms=0");
  REQUIRE(eventually([&] { return queue_length(pool.scrape()) == 1; }));
  const Response refused = send_request(listen, get_request("/refused"));
  CHECK(refused.status() == 503);
  CHECK(refused.header("Retry-After") == "1");
  CHECK(refused.body().find("queue is full") != std::string::npos);
  CHECK(running.wait_for(0s) == std::future_status::timeout);
  CHECK(running.get().status() == 200);
  CHECK(waiting.get().status() == 200);
}

TEST_CASE("a request that waits longer than queue_timeout gets 503", "[proxy][queue]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "queue_timeout = \"300ms\""});
  const Address& listen = pool.listen();
  auto slow = send_async(listen, "/slow?sleep_ms=1500");
  REQUIRE(eventually([&] { return held(pool) == 1; }));
  const Response waited = send_request(listen, get_request("/fast"));
  CHECK(waited.status() == 503);
  CHECK(waited.body().find("queue_timeout") != std::string::npos);
  CHECK(slow.get().status() == 200);
  const std::string scrape = pool.scrape();
  CHECK(metric_value(scrape, R"(scgi_rejected_total{pool="app",reason="queue_timeout"})") == 1);
  // It waited its queue_timeout, by the proxy's own account.
  REQUIRE(eventually([&] { return access_log_lines(pool.access_log()).size() == 2; }));
  const auto lines = access_log_lines(pool.access_log());
  const auto fast = std::find_if(lines.begin(), lines.end(),
                                 [](const auto& line) { return line.at("uri") == "/fast"; });
  REQUIRE(fast != lines.end());
  CHECK(fast->at("outcome") == "queue_timeout");
  CHECK(std::stod(fast->at("queue_ms")) >= 300);
}

TEST_CASE("a freed slot goes to the oldest waiter, in arrival order", "[proxy][queue]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  const Address& listen = pool.listen();
  // Arrival 0 holds the single worker; 1..4 are sent from this one thread,
  // each once the one before is in the queue (so their order is certain): the
  // worker must then serve them in that order.
  std::vector<int> sockets;
  for (int i = 0; i < 5; ++i) {
    const int fd = connect_to(listen);
    REQUIRE(fd >= 0);
    const std::string request =
        get_request("/order" + std::to_string(i) + (i == 0 ? "?sleep_ms=1500" : ""));
    REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
    sockets.push_back(fd);
    REQUIRE(eventually([&] { return held(pool) == i + 1; }));
  }
  // The worker numbers what it answers (X-Request-Count): the order it served
  // them in. (Not the access log's: a line is written when its exchange ends,
  // and an exchange may end after the slot it gave back served the next one.)
  std::vector<int> served_as;
  for (const int fd : sockets) {
    const Response response = read_response(fd, 20s);
    CHECK(response.status() == 200);
    served_as.push_back(std::atoi(response.header("X-Request-Count").c_str()));
    ::close(fd);
  }
  std::string listed;
  for (const int n : served_as)
    listed += std::to_string(n) + " ";
  INFO("served as: " << listed);
  for (std::size_t i = 1; i < served_as.size(); ++i)
    CHECK(served_as[i] == served_as[i - 1] + 1);
}

TEST_CASE("a client that leaves the queue is never sent to a worker", "[proxy][queue]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  const Address& listen = pool.listen();
  auto slow = send_async(listen, "/slow?sleep_ms=1500");
  REQUIRE(eventually([&] { return held(pool) == 1; }));
  // Queue one request, then hang up while it waits.
  const int fd = connect_to(listen);
  REQUIRE(fd >= 0);
  const std::string request = get_request("/abandoned");
  REQUIRE(::write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  REQUIRE(eventually([&] { return queue_length(pool.scrape()) == 1; }));
  ::close(fd);
  CHECK(slow.get().status() == 200);
  // The next request is served by the worker as its second, not third.
  const Response next = send_request(listen, get_request("/after"));
  CHECK(next.status() == 200);
  CHECK(next.header("X-Request-Count") == "2");
  const std::string scrape = pool.scrape();
  CHECK(metric_value(scrape, R"(scgi_rejected_total{pool="app",reason="client_closed"})") == 1);
}
