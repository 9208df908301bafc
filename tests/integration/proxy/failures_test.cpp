// Bad input, dead and slow backends, impatient clients: each gets a clear
// answer, and nothing reaches a backend that should not.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "../support/harness.hpp"
#include "scgi/request_writer.hpp"

using namespace scgi;
using namespace scgi::test;
using namespace std::string_literals;

namespace {

std::string pool_config(const Address& listen, const std::vector<Address>& backends,
                        const std::string& extra = "", std::uint16_t metrics_port = 0) {
  return one_pool_config(
      {.listen = listen, .backends = backends, .pool_keys = extra, .metrics_port = metrics_port});
}

}  // namespace

TEST_CASE("every malformed request gets its error status and the backend never sees a byte",
          "[proxy][bad-input]") {
  TempDir dir;
  RecordingServer backend;
  const Address listen = loopback(free_port());
  const std::uint16_t metrics_port = free_port();
  ProxyProcess proxy(dir,
                     pool_config(listen, {backend.address()},
                                 "max_header = \"1KiB\"\nmax_body = \"100\"", metrics_port),
                     listen);
  const std::string cl0 = "CONTENT_LENGTH\0"s + "0\0"s;
  const std::string scgi1 = "SCGI\0"s + "1\0"s;
  auto netstring = [](const std::string& block) {
    return std::to_string(block.size()) + ":" + block + ",";
  };
  struct Case {
    const char* what;
    std::string bytes;
    int status;
  };
  const std::vector<Case> cases = {
      {"an HTTP request", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"leading zero", "024:" + cl0 + scgi1 + ",", 400},
      {"letter in length", "2x:", 400},
      {"missing comma", "24:" + cl0 + scgi1 + ";", 400},
      {"block not NUL-terminated",
       netstring(cl0 + "SCGI\0"
                       "1"s),
       400},
      {"empty name", netstring(cl0 + scgi1 + "\0"s + "v\0"s), 400},
      {"CONTENT_LENGTH not first", netstring(scgi1 + cl0), 400},
      {"empty CONTENT_LENGTH", netstring("CONTENT_LENGTH\0\0"s + scgi1), 400},
      {"negative CONTENT_LENGTH", netstring("CONTENT_LENGTH\0-1\0"s + scgi1), 400},
      {"CONTENT_LENGTH overflow",
       netstring("CONTENT_LENGTH\0"
                 "99999999999999999999999\0"s +
                 scgi1),
       400},
      {"second CONTENT_LENGTH", netstring(cl0 + scgi1 + cl0), 400},
      {"SCGI missing (nginx without scgi_params)", netstring(cl0 + "REQUEST_URI\0/\0"s), 400},
      {"SCGI=2",
       netstring(cl0 + "SCGI\0"
                       "2\0"s),
       400},
      {"second SCGI", netstring(cl0 + scgi1 + scgi1), 400},
      {"header above max_header", "2000:", 431},
      {"body above max_body",
       netstring("CONTENT_LENGTH\0"
                 "101\0"s +
                 scgi1) +
           std::string(101, 'x'),
       413},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const Response response = send_request(listen, c.bytes, 5s);
    CHECK(response.status() == c.status);
    CHECK(response.closed);
  }
  // A connection made for any of them would reach the recorder within this window.
  CHECK(holds_for([&] { return backend.connections() == 0 && backend.bytes() == 0; }, 200ms));

  const std::string log = proxy.process().log();
  CHECK(log.find("include scgi_params") != std::string::npos);
  CHECK(log.find("is an HTTP client talking to the SCGI port?") != std::string::npos);
  const std::string scrape = http_get(metrics_port, "/metrics");
  CHECK(metric_value(scrape, R"(scgi_rejected_total{pool="app",reason="bad_request"})") == 14);
  CHECK(metric_value(scrape, R"(scgi_rejected_total{pool="app",reason="too_large"})") == 2);
}

TEST_CASE("a header that does not arrive within client_timeout closes the connection",
          "[proxy][bad-input]") {
  TempDir dir;
  RecordingServer backend;
  const Address listen = loopback(free_port());
  ProxyProcess proxy(dir, pool_config(listen, {backend.address()}, "client_timeout = \"300ms\""),
                     listen);
  const int fd = connect_to(listen);
  REQUIRE(fd >= 0);
  // A slow client: part of the header, then a byte every 100 ms, never all of
  // it. No pause reaches client_timeout: only a deadline for the whole header
  // closes the connection while it drips (within 30 bytes, 10 times the timeout).
  const std::string request = get_request("/slow-loris");
  REQUIRE(request.size() > 35);
  REQUIRE(::send(fd, request.data(), 5, MSG_NOSIGNAL) == 5);
  bool closed_while_dripping = false;
  for (std::size_t i = 5; i < 35 && !closed_while_dripping; ++i) {
    std::this_thread::sleep_for(100ms);  // the client's pace
    closed_while_dripping = peer_closed(fd) || ::send(fd, request.data() + i, 1, MSG_NOSIGNAL) < 0;
  }
  const Response rest = read_response(fd, 3s);
  ::close(fd);
  CHECK(closed_while_dripping);
  CHECK((rest.closed || !rest.error.empty()));
  CHECK(rest.status() == 0);  // closed, not answered
  CHECK(backend.connections() == 0);
  CHECK(proxy.process().log().find("client_timeout") != std::string::npos);
}

TEST_CASE("a connection that sends nothing is not an error", "[proxy][bad-input]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  const Address& listen = pool.listen();
  for (int i = 0; i < 5; ++i)
    ::close(connect_to(listen));
  // The proxy sees each end at once; a window for a count or a warning to show.
  CHECK(holds_for(
      [&] {
        return metric_value(pool.scrape(), R"(scgi_request_duration_seconds_count{pool="app"})") ==
                   0 &&
               pool.proxy().log().find("warn") == std::string::npos;
      },
      200ms));
}

TEST_CASE("a refused connect is retried on another backend", "[proxy][failures]") {
  TempDir dir;
  const Address dead = loopback(free_port());
  ProxiedWorkers pool(dir, {.more_backends = {dead}});
  for (int i = 0; i < 10; ++i)
    CHECK(send_request(pool.listen(), get_request("/x")).status() == 200);
  const std::string scrape = pool.scrape();
  CHECK(metric_value(scrape, R"(scgi_retries_total{pool="app"})") >= 1);
  CHECK(metric_value(scrape, fmt::format(R"(scgi_backend_up{{backend="{}",pool="app"}})",
                                         dead.to_string())) == 0);
  CHECK(metric_value(
            scrape,
            fmt::format(R"(scgi_backend_errors_total{{backend="{}",kind="connect",pool="app"}})",
                        dead.to_string())) >= 1);
}

TEST_CASE("when every backend fails to connect the answer is 502, then 503 while all are down",
          "[proxy][failures]") {
  TempDir dir;
  const Address dead1 = loopback(free_port());
  const Address dead2 = loopback(free_port());
  const Address listen = loopback(free_port());
  ProxyProcess proxy(dir, pool_config(listen, {dead1, dead2}), listen);
  const Response first = send_request(listen, get_request("/x"));
  CHECK(first.status() == 502);
  // After two failures in a row each backend is marked down: nothing to try, 503 at once.
  send_request(listen, get_request("/x"));
  const Response later = send_request(listen, get_request("/x"));
  CHECK(later.status() == 503);
  CHECK(later.body().find("no backend is up") != std::string::npos);
}

TEST_CASE("a backend that comes back is probed and used again", "[proxy][failures]") {
  TempDir dir;
  const std::uint16_t port = free_port();
  const Address listen = loopback(free_port());
  ProxyProcess proxy(dir, pool_config(listen, {loopback(port)}), listen);
  send_request(listen, get_request("/x"));
  send_request(listen, get_request("/x"));
  Process worker = Process::start(
      {built_binary("scgi-sample-worker"), "--port", std::to_string(port)}, dir.file("late.log"));
  REQUIRE(wait_until_accepting(loopback(port)));
  CHECK(eventually([&] { return send_request(listen, get_request("/x")).status() == 200; }, 10s));
  CHECK(proxy.process().log().find("is up again") != std::string::npos);
}

TEST_CASE("a backend silent past request_timeout gives 504", "[proxy][failures]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "request_timeout = \"300ms\""});
  // The worker would answer 200 after 3 s: a 504 is the proxy giving up first.
  const Response response = send_request(pool.listen(), get_request("/stuck?sleep_ms=3000"));
  CHECK(response.status() == 504);
  const std::string scrape = pool.scrape();
  CHECK(metric_value(scrape, R"(scgi_requests_total{code="504",pool="app"})") == 1);
  CHECK(outcomes(scrape, "backend_timeout") == 1);
  CHECK(pool.proxy().log().find("/stuck?sleep_ms=3000") != std::string::npos);
}

TEST_CASE("a client that leaves mid-response frees the backend", "[proxy][failures]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  const Address& listen = pool.listen();
  const int fd = connect_to(listen);
  REQUIRE(fd >= 0);
  const std::string request = get_request("/big?size=200000000");
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  char buffer[4096];
  REQUIRE(::recv(fd, buffer, sizeof buffer, 0) > 0);
  ::close(fd);
  // The slot comes back and the worker serves the next request.
  CHECK(eventually([&] { return in_flight(pool.scrape(), pool.worker("w1").address()) == 0; }));
  CHECK(send_request(listen, get_request("/after")).status() == 200);
}
