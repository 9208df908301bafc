// Byte-exact forwarding in both directions, large bodies with flat memory.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "../support/harness.hpp"
#include "scgi/request_writer.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

std::string all_byte_values(std::size_t size) {
  std::string body(size, '\0');
  for (std::size_t i = 0; i < size; ++i)
    body[i] = static_cast<char>(i % 256);
  return body;
}

}  // namespace

TEST_CASE("header and body reach the backend byte for byte, the response comes back unchanged",
          "[proxy][forwarding]") {
  TempDir dir;
  // Nothing added: the header as the client sent it (the variables are tested below).
  ProxiedWorkers pool(dir, {.pool_keys = "queue_time = false"});
  const Address& listen = pool.listen();

  for (const std::size_t body_size : {std::size_t{0}, std::size_t{1}, std::size_t{70'000}}) {
    CAPTURE(body_size);
    // Repeated names (Debian's nginx repeats HTTP_COOKIE), empty values, binary bytes.
    const std::string request = make_request({{"REQUEST_METHOD", "POST"},
                                              {"REQUEST_URI", "/echo?echo=1"},
                                              {"QUERY_STRING", "echo=1"},
                                              {"CONTENT_TYPE", ""},
                                              {"HTTP_COOKIE", "a=1"},
                                              {"HTTP_COOKIE", "b=2"},
                                              {"HTTP_X_BINARY", "\x01\x7f\xff,:"}},
                                             all_byte_values(body_size));
    const Response response = send_request(listen, request);
    REQUIRE(response.closed);
    CHECK(response.status() == 200);
    CHECK(response.body() == request);  // the worker echoes exactly what it received
  }
}

TEST_CASE("the response is streamed back unchanged, whatever its shape", "[proxy][forwarding]") {
  TempDir dir;
  ProxiedWorkers pool(dir);
  const Address& listen = pool.listen();

  SECTION("a status chosen by the worker passes through") {
    const Response response = send_request(listen, get_request("/x?status=404"));
    CHECK(response.status() == 404);
    CHECK(response.header("X-Worker-Name") == "w1");
  }
  SECTION("a response with only headers passes through") {
    const Response response = send_request(listen, get_request("/x?head_only=1"));
    CHECK(response.status() == 200);
    CHECK(response.body().empty());
  }
  SECTION("a worker that closes without answering gives 502") {
    const Response response = send_request(listen, get_request("/x?close=1"));
    CHECK(response.status() == 502);
    CHECK(response.body().find("without answering") != std::string::npos);
  }
}

TEST_CASE("100 MB up and 100 MB down pass with flat proxy memory", "[proxy][forwarding][large]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "queue_time = false"});  // the echo is the request
  const Address& listen = pool.listen();
  // What the proxy holds before the transfer: the binary and its runtime (much
  // more under ASan), which the check below leaves out.
  const auto resident_at_start = resident_bytes(pool.proxy().pid());
  constexpr std::uint64_t kSize = 100'000'000;

  SECTION("upload, echoed back while it streams") {
    const std::string header = encode_header({{"CONTENT_LENGTH", std::to_string(kSize)},
                                              {"SCGI", "1"},
                                              {"REQUEST_METHOD", "POST"},
                                              {"REQUEST_URI", "/up?echo=1"},
                                              {"QUERY_STRING", "echo=1"}});
    const int fd = connect_to(listen);
    REQUIRE(fd >= 0);
    // Send and receive at once, as a front end does; each side checks its bytes.
    std::thread sender([&] {
      ::send(fd, header.data(), header.size(), MSG_NOSIGNAL);
      std::string chunk(1 << 16, '\0');
      for (std::uint64_t sent = 0; sent < kSize;) {
        const auto n =
            static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), kSize - sent));
        for (std::size_t i = 0; i < n; ++i)
          chunk[i] = static_cast<char>((sent + i) % 253);
        for (std::size_t done = 0; done < n;) {
          const ssize_t w = ::send(fd, chunk.data() + done, n - done, MSG_NOSIGNAL);
          if (w <= 0) return;
          done += static_cast<std::size_t>(w);
        }
        sent += n;
      }
    });
    // Read the response head, then verify the echoed header and body byte by byte.
    std::string head;
    std::uint64_t received = 0;
    bool matches = true;
    char buffer[1 << 16];
    bool in_body = false;
    std::string pending;
    for (;;) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      std::string_view piece(buffer, static_cast<std::size_t>(n));
      if (!in_body) {
        pending.append(piece);
        const auto end = pending.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        in_body = true;
        piece = std::string_view(pending).substr(end + 4);
      }
      for (const char c : piece) {
        const char expected = received < header.size()
                                  ? header[received]
                                  : static_cast<char>((received - header.size()) % 253);
        matches = matches && c == expected;
        ++received;
      }
      if (in_body && !pending.empty()) pending.clear();
    }
    sender.join();
    ::close(fd);
    CHECK(received == header.size() + kSize);
    CHECK(matches);
  }

  SECTION("download") {
    const int fd = connect_to(listen);
    REQUIRE(fd >= 0);
    const std::string request = get_request("/down?size=" + std::to_string(kSize));
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::uint64_t total = 0;
    char buffer[1 << 16];
    for (;;) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      total += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    CHECK(total > kSize);  // head + body
  }

  // Fixed-size buffers: the proxy never held a body whole.
  const auto peak = peak_resident_bytes(pool.proxy().pid());
  INFO("proxy peak RSS " << peak / 1024 << " KiB, " << resident_at_start / 1024
                         << " KiB before the transfer");
  CHECK(peak - resident_at_start < 32ull * 1024 * 1024);
}

TEST_CASE("the proxy listens and connects over IPv6 and Unix sockets", "[proxy][forwarding]") {
  TempDir dir;
  // A worker on a Unix socket, and one on IPv6 loopback.
  const std::string worker_socket = dir.file("w1.sock");
  Process unix_worker = Process::start(
      {built_binary("scgi-sample-worker"), "--unix", worker_socket, "--name", "unix"},
      dir.file("unix-worker.log"));
  const Address unix_backend{Address::Kind::unix_socket, {}, 0, worker_socket};
  REQUIRE(wait_until_accepting(unix_backend));
  const std::uint16_t v6_port = free_port();
  Process v6_worker = Process::start({built_binary("scgi-sample-worker"), "--host", "::1", "--port",
                                      std::to_string(v6_port), "--name", "v6"},
                                     dir.file("v6-worker.log"));
  const Address v6_backend{Address::Kind::tcp, "::1", v6_port, {}};
  REQUIRE(wait_until_accepting(v6_backend));

  const Address unix_listen{Address::Kind::unix_socket, {}, 0, dir.file("proxy.sock")};
  const Address v6_listen{Address::Kind::tcp, "::1", free_port(), {}};
  ProxyProcess proxy(
      dir,
      fmt::format("[metrics]\nlisten = \"\"\n"
                  "[[pool]]\nname = \"over-unix\"\nlisten = \"{}\"\nbackends = [\"{}\"]\n"
                  "[[pool]]\nname = \"over-v6\"\nlisten = \"{}\"\nbackends = [\"{}\"]\n",
                  unix_listen.to_string(), v6_backend.to_string(), v6_listen.to_string(),
                  unix_backend.to_string()),
      unix_listen);
  REQUIRE(wait_until_accepting(v6_listen));
  const Response via_unix = send_request(unix_listen, get_request("/a"));
  CHECK(via_unix.status() == 200);
  CHECK(via_unix.header("X-Worker-Name") == "v6");
  const Response via_v6 = send_request(v6_listen, get_request("/b"));
  CHECK(via_v6.status() == 200);
  CHECK(via_v6.header("X-Worker-Name") == "unix");

  // The proxy removes its Unix socket file when it stops.
  const int status = proxy.process().stop();
  INFO(describe_status(status) << "; the proxy's log:\n" << proxy.process().log());
  CHECK(exited_with(status, 0));
  CHECK_FALSE(std::filesystem::exists(unix_listen.path));
}
