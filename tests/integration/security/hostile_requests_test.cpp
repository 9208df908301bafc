// Security: hostile request bytes (see docs/security.md), tried from outside
// against the real binaries: an answer that must survive the input left
// unread behind it, a CONTENT_LENGTH that workers would read differently, and
// request data that tries to forge lines of the daemon's log.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "../support/harness.hpp"
#include "scgi/request_writer.hpp"

using namespace scgi;
using namespace scgi::test;
using namespace std::string_literals;

namespace {

std::string netstring(const std::string& block) {
  return std::to_string(block.size()) + ":" + block + ",";
}

// The lines of `log` that contain `needle`.
std::vector<std::string> lines_with(const std::string& log, const std::string& needle) {
  std::vector<std::string> found;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line))
    if (line.find(needle) != std::string::npos) found.push_back(line);
  return found;
}

// Sends `bytes` in pieces of `piece` bytes, as a client streaming a body does;
// "" when all went, else why the connection refused the rest.
std::string send_in_pieces(int fd, const std::string& bytes, std::size_t piece) {
  for (std::size_t sent = 0; sent < bytes.size();) {
    const ssize_t n =
        ::send(fd, bytes.data() + sent, std::min(piece, bytes.size() - sent), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? std::strerror(errno) : "sent nothing";
    sent += static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace

TEST_CASE("an error answer reaches a client that still has input behind it",
          "[security][hostile-requests]") {
  TempDir dir;
  RecordingServer backend;
  const Address listen = loopback(free_port());
  ProxyProcess proxy(
      dir,
      one_pool_config(
          {.listen = listen, .backends = {backend.address()}, .pool_keys = "max_body = \"100\""}),
      listen);
  // The client sends what is refused, and once the answer is there goes on
  // sending the input behind it, as one that streams a body does, before it
  // reads. Input that arrives at a closed connection (or waits unread at the
  // close) makes the kernel reset it: the client's next write fails, and a
  // client that stops there reports a reset instead of the answer. 48 KiB
  // behind each: less than what the proxy reads and discards before it closes.
  const std::string behind(48 * 1024, 'j');
  struct Case {
    const char* what;
    std::string refused;
    int status;
  };
  const std::vector<Case> cases = {
      {"a body above max_body", netstring("CONTENT_LENGTH\0"s + "200\0"s + "SCGI\0"s + "1\0"s),
       413},
      {"a malformed header", "2x:", 400},
      {"an HTTP request with a body", "POST / HTTP/1.1\r\nContent-Length: 49152\r\n\r\n", 400},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const int fd = connect_to(listen);
    REQUIRE(fd >= 0);
    REQUIRE(::send(fd, c.refused.data(), c.refused.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(c.refused.size()));
    pollfd answered{fd, POLLIN, 0};
    REQUIRE(::poll(&answered, 1, 10'000) == 1);
    const std::string send_error = send_in_pieces(fd, behind, 4096);
    const Response response = read_response(fd, 10s);
    int reset = 0;
    socklen_t reset_size = sizeof reset;
    REQUIRE(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &reset, &reset_size) == 0);
    ::close(fd);
    CHECK(send_error == "");
    CHECK(response.error == "");
    CHECK(response.closed);
    CHECK(response.status() == c.status);
    CHECK(response.body().find(c.status == 413 ? "max_body" : "") != std::string::npos);
    CHECK(std::string(reset ? std::strerror(reset) : "") == "");
  }
  CHECK(backend.connections() == 0);
}

TEST_CASE("a response given before the body was read reaches the client whole",
          "[security][hostile-requests]") {
  // A backend that answers (128 KiB) as soon as the header is in, and closes
  // without reading the body: the proxy stops forwarding the body, so input
  // stays unread while the end of the response still waits for the client.
  const std::string answer =
      "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" + std::string(128 * 1024, 'r');
  const Address backend_address = loopback(free_port());
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listener >= 0);
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in bind_to{};
  bind_to.sin_family = AF_INET;
  bind_to.sin_port = htons(backend_address.port);
  bind_to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener, reinterpret_cast<const sockaddr*>(&bind_to), sizeof bind_to) == 0);
  REQUIRE(::listen(listener, 4) == 0);
  std::atomic<bool> backend_closed{false};
  std::thread backend([&] {
    pollfd ready{listener, POLLIN, 0};
    if (::poll(&ready, 1, 20'000) != 1) return;
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    char header[4096];
    if (::recv(fd, header, sizeof header, 0) > 0) {
      for (std::size_t sent = 0; sent < answer.size();) {
        const ssize_t n = ::send(fd, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
    }
    ::close(fd);
    backend_closed = true;
  });

  TempDir dir;
  const Address listen = loopback(free_port());
  // body_buffer 0: the body streams, so the backend gets the header before it.
  ProxyProcess proxy(
      dir,
      one_pool_config(
          {.listen = listen, .backends = {backend_address}, .pool_keys = "body_buffer = \"0\""}),
      listen);
  const std::string body(32 * 1024, 'b');
  const std::string request =
      make_request({{"REQUEST_METHOD", "POST"}, {"REQUEST_URI", "/early"}}, body);
  // A client that reads only once it has sent its request, with a small
  // receive buffer, so that the response's end is still with the proxy.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(listen.port);
  peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) == 0);
  // The header alone, until the backend has answered and closed. Then the body,
  // as far as it goes.
  const std::size_t header = request.size() - body.size();
  REQUIRE(::send(fd, request.data(), header, MSG_NOSIGNAL) == static_cast<ssize_t>(header));
  REQUIRE(eventually([&] { return backend_closed.load(); }, 10s));
  std::size_t sent = header;
  const auto give_up = std::chrono::steady_clock::now() + 2s;
  while (sent < request.size() && std::chrono::steady_clock::now() < give_up) {
    const ssize_t n =
        ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno != EAGAIN) {
      break;
    } else {
      pollfd writable{fd, POLLOUT, 0};
      ::poll(&writable, 1, 100);
    }
  }
  const Response response = read_response(fd, 10s);
  ::close(fd);
  backend.join();
  ::close(listener);
  INFO(proxy.process().log());
  CHECK(response.error.empty());
  CHECK(response.status() == 200);
  CHECK(response.body().size() == 128 * 1024);
}

TEST_CASE("a CONTENT_LENGTH with a leading zero is refused, naming the rule",
          "[security][hostile-requests]") {
  TempDir dir;
  RecordingServer backend;
  const Address listen = loopback(free_port());
  ProxyProcess proxy(dir, one_pool_config({.listen = listen, .backends = {backend.address()}}),
                     listen);
  // Some workers read "010" as 8 (octal), others as 10: the proxy and the
  // worker would disagree on where the body ends, and the rest would be
  // taken for another request.
  for (const char* length : {"05", "007", "010", "00"}) {
    CAPTURE(length);
    const std::string request =
        netstring("CONTENT_LENGTH\0"s + length + "\0"s + "SCGI\0"s + "1\0"s) + "1234567890";
    const Response response = send_request(listen, request, 10s);
    CHECK(response.status() == 400);
  }
  CHECK(eventually([&] { return lines_with(proxy.process().log(), "leading zero").size() == 4; }));
  // "0" alone is a length, not a leading zero.
  const std::string empty_body = netstring("CONTENT_LENGTH\0"s + "0\0"s + "SCGI\0"s + "1\0"s);
  // Forwarded: the recorder reads it and closes without answering.
  CHECK(send_request(listen, empty_body, 10s).status() == 502);
  CHECK(eventually([&] { return backend.connections() == 1; }));
}

TEST_CASE("request data cannot forge or corrupt lines of the daemon's log",
          "[security][hostile-requests]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  // The worker closes without answering, so the proxy logs the REQUEST_URI.
  const std::string uri =
      "/x\n2026-12-03T00:00:00.000Z error forged line\r\x1b[2J\x1b]0;title\x07\xff\"q\"\\";
  const std::string request =
      make_request({{"REQUEST_METHOD", "GET"}, {"REQUEST_URI", uri}, {"QUERY_STRING", "close=1"}});
  CHECK(send_request(pool.listen(), request, 10s).status() == 502);
  REQUIRE(eventually(
      [&] { return !lines_with(pool.proxy().log(), "closed without answering").empty(); }));
  const std::string log = pool.proxy().log();
  INFO(log);
  const auto forged = lines_with(log, "forged line");
  REQUIRE(forged.size() == 1);  // one line, not two
  CHECK(forged[0].find("closed without answering") != std::string::npos);
  CHECK(forged[0].find(
            "\"/x\\n2026-12-03T00:00:00.000Z error forged line\\r\\x1b[2J\\x1b]0;title\\x07\\xff"
            "\\\"q\\\"\\\\\"") != std::string::npos);
  CHECK(log.find('\x1b') == std::string::npos);
  CHECK(log.find('\r') == std::string::npos);
  CHECK(log.find('\xff') == std::string::npos);
  // The access log escapes the same bytes its own way, one line per request.
  REQUIRE(eventually([&] { return std::filesystem::file_size(pool.access_log()) > 0; }));
  std::ifstream file(pool.access_log());
  const std::string access((std::istreambuf_iterator<char>(file)),
                           std::istreambuf_iterator<char>());
  INFO(access);
  CHECK(lines_with(access, "forged").size() == 1);
  CHECK(access.find("uri=/"
                    "x%0A2026-12-03T00:00:00.000Z%20error%20forged%20line%0D%1B[2J%1B]0;title%07%"
                    "FF\"q\"\\") != std::string::npos);
}

TEST_CASE("the manager's stuck-worker line cannot be forged through REQUEST_URI",
          "[security][hostile-requests]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir,
      {.listen = listen,
       .command = sample_worker_command(),
       .pool_keys = "workers = 1\nrequest_timeout = \"500ms\"\nstop_timeout = \"500ms\""},
      1);
  const std::string request =
      make_request({{"REQUEST_METHOD", "GET"},
                    {"REQUEST_URI", "/stuck\n2026-12-03T00:00:00.000Z error forged stuck\x1b[0m"},
                    {"QUERY_STRING", "sleep_ms=20000"}});
  CHECK(send_request(listen, request, 10s).status() == 504);
  REQUIRE(
      eventually([&] { return !lines_with(manager.process().log(), "is stuck").empty(); }, 10s));
  const std::string log = manager.process().log();
  INFO(log);
  // Both the proxy's timeout line and the manager's stuck line carry it, escaped.
  const auto forged = lines_with(log, "forged stuck");
  CHECK(forged.size() == 2);
  for (const std::string& line : forged)
    CHECK(line.rfind("2026-12-03T00:00:00.000Z", 0) != 0);
  CHECK(log.find("is stuck: \"/stuck\\n2026-12-03T00:00:00.000Z error forged stuck\\x1b[0m\"") !=
        std::string::npos);
  CHECK(log.find('\x1b') == std::string::npos);
}
