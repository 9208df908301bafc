// Security: slow clients (see docs/security.md), tried from outside against the
// real binaries. A client that sends its body or reads its response slowly, on
// purpose, must not hold a worker for longer than its budget allows: as many
// such clients as there are workers cost the others little throughput.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "../support/harness.hpp"
#include "scgi/request_writer.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// A connected client whose receive buffer is small, so that what it does not
// read stays with the proxy instead of in its own kernel buffers.
int connect_small_buffer(const Address& address) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int size = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  sockaddr_in peer{};
  peer.sin_family = AF_INET;
  peer.sin_port = htons(address.port);
  ::inet_pton(AF_INET, address.host.c_str(), &peer.sin_addr);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A client on its own thread doing one slow thing until told to stop, the
// proxy closes its connection, or `limit` passes.
class SlowClient {
 public:
  SlowClient() = default;
  SlowClient(const SlowClient&) = delete;
  SlowClient& operator=(const SlowClient&) = delete;
  ~SlowClient() { stop(); }

  // Sends a POST header and the first `at_once` body bytes of `body_size`,
  // then one byte every `interval`.
  void trickle_body(const Address& address, std::size_t body_size, std::size_t at_once,
                    std::chrono::milliseconds interval, std::chrono::seconds limit = 60s) {
    const std::string request = make_request({{"REQUEST_METHOD", "POST"},
                                              {"REQUEST_URI", "/upload"},
                                              {"QUERY_STRING", ""},
                                              {"SERVER_PROTOCOL", "HTTP/1.1"}},
                                             std::string(body_size, 'b'));
    start(address, false, [=, this](int fd) {
      const std::size_t header = request.size() - body_size;
      if (::send(fd, request.data(), header + at_once, MSG_NOSIGNAL) !=
          static_cast<ssize_t>(header + at_once))
        return;
      started_ = true;
      const auto give_up = std::chrono::steady_clock::now() + limit;
      for (std::size_t sent = header + at_once; sent < request.size(); ++sent) {
        if (!pause(interval, give_up, fd)) return;
        if (::send(fd, request.data() + sent, 1, MSG_NOSIGNAL) != 1) break;
      }
    });
  }

  // Asks for a response of `size` bytes and reads it `chunk` bytes every `interval`.
  void read_slowly(const Address& address, std::size_t size, std::size_t chunk,
                   std::chrono::milliseconds interval, std::chrono::seconds limit = 60s) {
    const std::string request = get_request("/big?size=" + std::to_string(size));
    start(address, true, [=, this](int fd) {
      if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(request.size()))
        return;
      started_ = true;
      const auto give_up = std::chrono::steady_clock::now() + limit;
      std::string buffer(chunk, '\0');
      while (pause(interval, give_up, fd)) {
        const ssize_t got = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (got > 0) received_ += static_cast<std::size_t>(got);
        if (got == 0) break;
      }
    });
  }

  bool started() const { return started_; }
  // The proxy closed the connection (rather than the client giving up).
  bool closed_by_proxy() const { return closed_by_proxy_; }
  std::size_t received() const { return received_; }
  bool wait_closed(std::chrono::milliseconds timeout) {
    return eventually([&] { return closed_by_proxy_.load(); }, timeout);
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  template <class F>
  void start(const Address& address, bool small_buffer, F body) {
    thread_ = std::thread([=, this] {
      const int fd = small_buffer ? connect_small_buffer(address) : connect_to(address);
      if (fd < 0) return;
      body(fd);
      ::close(fd);
    });
  }
  // Sleeps `interval` in small steps; false when it is time to stop.
  bool pause(std::chrono::milliseconds interval, std::chrono::steady_clock::time_point give_up,
             int fd) {
    const auto until = std::chrono::steady_clock::now() + interval;
    while (std::chrono::steady_clock::now() < until) {
      if (stop_ || std::chrono::steady_clock::now() > give_up) return false;
      if (!closed_by_proxy_ && peer_closed(fd)) closed_by_proxy_ = true;
      if (closed_by_proxy_) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> started_{false};
  std::atomic<bool> closed_by_proxy_{false};
  std::atomic<std::size_t> received_{0};
};

struct LoadFigures {
  double throughput = 0;
  int requests = 0;
  int errors = 0;
  std::string report;
};

LoadFigures run_load(const TempDir& dir, const Address& target, const std::string& name) {
  Process load = start_load(dir, target, "4s", name);
  const nlohmann::json report = finish_load(load);
  LoadFigures figures;
  figures.report = report.dump();
  if (!report.is_object()) return figures;
  figures.throughput = report["throughput_rps"].get<double>();
  figures.requests = report["requests"].get<int>();
  figures.errors = report["errors"].get<int>();
  return figures;
}

// Baseline load, then the same load beside one slow client per worker.
void check_throughput_beside(const TempDir& dir, ProxiedWorkers& pool, SlowClient& first,
                             SlowClient& second, const char* what) {
  // Each has sent its header: from the moment the proxy reads it (at once),
  // a worker held for it would be missing from the loaded run.
  REQUIRE(eventually([&] { return first.started() && second.started(); }, 10s));
  const LoadFigures loaded = run_load(dir, pool.listen(), "loaded.json");
  CHECK_FALSE(first.closed_by_proxy());  // still slow and still there: the attack held
  CHECK_FALSE(second.closed_by_proxy());
  first.stop();
  second.stop();
  const LoadFigures baseline = run_load(dir, pool.listen(), "baseline.json");
  INFO("baseline: " << baseline.report);
  INFO("beside 2 " << what << ": " << loaded.report);
  INFO(pool.proxy().log());
  const double ratio = baseline.throughput > 0 ? loaded.throughput / baseline.throughput : 0;
  WARN("throughput beside 2 " << what << " / baseline: " << ratio << " (" << loaded.throughput
                              << " / " << baseline.throughput << " req/s)");
  REQUIRE(baseline.requests > 0);
  CHECK(loaded.errors == 0);
  // The promise is 90 %; the bound leaves room for a loaded shared machine.
  // Before the fix nearly every request of the loaded run is a 503.
  CHECK(ratio >= 0.5);
}

// [proxy] lines that hold spilled responses in `dir`, a fresh folder of the test.
std::string spill_keys(const TempDir& dir, const std::string& more = "") {
  std::filesystem::create_directories(dir.file("spill"));
  return "spill_dir = \"" + dir.file("spill") + "\"\n" + more;
}

// Byte i of the sample worker's /big?size=N body is i*31 mod 251.
bool is_sample_body(const std::string& body, std::size_t size) {
  if (body.size() != size) return false;
  for (std::size_t i = 0; i < size; ++i)
    if (static_cast<unsigned char>(body[i]) != (i * 31) % 251) return false;
  return true;
}

// Sends `request` on a connection with a small receive buffer and reads nothing.
int request_and_stall(const Address& address, const std::string& request) {
  const int fd = connect_small_buffer(address);
  if (fd < 0) return -1;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

TEST_CASE("clients that trickle their bodies hold no worker", "[security][slow-clients]") {
  // client_timeout is long so that only buffering, not the budget, is tried here.
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"w1", "w2"},
                            .pool_keys = "client_timeout = \"30s\"\nqueue_timeout = \"2s\""});
  SlowClient first;
  SlowClient second;
  first.trickle_body(pool.listen(), 100, 1, 3s);
  second.trickle_body(pool.listen(), 100, 1, 3s);
  check_throughput_beside(dir, pool, first, second, "body tricklers");
}

TEST_CASE("clients that read their responses slowly hold no worker", "[security][slow-clients]") {
  // 8 MiB: more than the kernel's socket buffers take on loopback (a few MiB
  // once autotuned), which is what pins a worker without read-ahead; and less
  // than response_buffer, so that the proxy takes it whole and frees the worker.
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"w1", "w2"},
                            .pool_keys = "client_timeout = \"30s\"\nqueue_timeout = "
                                         "\"2s\"\nresponse_buffer = \"16MiB\""});
  SlowClient first;
  SlowClient second;
  first.read_slowly(pool.listen(), 8 << 20, 1024, 500ms);
  second.read_slowly(pool.listen(), 8 << 20, 1024, 500ms);
  check_throughput_beside(dir, pool, first, second, "slow readers");
}

TEST_CASE("clients that read large responses slowly hold no worker: the rest waits on disk",
          "[security][slow-clients]") {
  // The default response_buffer (256 KiB) and 8 MiB responses: past the
  // buffer and the kernel's, the response goes to spill_dir, and the worker
  // is free as soon as it has sent it all.
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"w1", "w2"},
                            .pool_keys = "client_timeout = \"30s\"\nqueue_timeout = \"2s\"",
                            .proxy_keys = spill_keys(dir)});
  SlowClient first;
  SlowClient second;
  first.read_slowly(pool.listen(), 8 << 20, 1024, 500ms);
  second.read_slowly(pool.listen(), 8 << 20, 1024, 500ms);
  check_throughput_beside(dir, pool, first, second, "slow readers of 8 MiB");
}

TEST_CASE("a response held on disk for a slow client reaches it whole",
          "[security][slow-clients]") {
  TempDir dir;
  ProxiedWorkers pool(dir,
                      {.pool_keys = "client_timeout = \"30s\"", .proxy_keys = spill_keys(dir)});
  const Address& listen = pool.listen();
  constexpr std::size_t kSize = 16 << 20;
  const int fd = request_and_stall(listen, get_request("/big?size=" + std::to_string(kSize)));
  REQUIRE(fd >= 0);
  // The only worker is free again while the client has read nothing.
  const Response other = send_request(listen, get_request("/other"), 10s);
  INFO(pool.proxy().log());
  CHECK(other.status() == 200);
  // Now the client reads it all: every byte, in order.
  const Response slow = read_response(fd, 60s);
  ::close(fd);
  CHECK(slow.status() == 200);
  CHECK(is_sample_body(slow.body(), kSize));
}

TEST_CASE("at spill_limit a response still arrives whole, its worker waiting for the client",
          "[security][slow-clients]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "client_timeout = \"30s\"",
                            .proxy_keys = spill_keys(dir, "spill_limit = \"1MiB\"")});
  const Address& listen = pool.listen();
  constexpr std::size_t kSize = 16 << 20;
  const int fd = request_and_stall(listen, get_request("/big?size=" + std::to_string(kSize)));
  REQUIRE(fd >= 0);
  CHECK(eventually(
      [&] {
        return pool.proxy().log().find("cannot hold more of a response") != std::string::npos;
      },
      20s));
  INFO(pool.proxy().log());
  const Response slow = read_response(fd, 60s);
  ::close(fd);
  CHECK(slow.status() == 200);
  CHECK(is_sample_body(slow.body(), kSize));
}

TEST_CASE("a spill_dir that cannot hold files stops scgi-proxy at start, naming it",
          "[security][slow-clients]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  dir.write("proxy.toml",
            one_pool_config({.listen = listen,
                             .backends = {loopback(free_port())},
                             .proxy_keys = "spill_dir = \"" + dir.file("missing") + "\"\n"}));
  Process proxy = Process::start({built_binary("scgi-proxy"), "--config", dir.file("proxy.toml")},
                                 dir.file("proxy.log"));
  const auto status = proxy.wait(10s);
  REQUIRE(status.has_value());
  CHECK_FALSE(exited_with(*status, 0));
  CHECK(proxy.log().find("spill_dir " + dir.file("missing")) != std::string::npos);

  // With spilling off, no folder is needed.
  SampleWorker worker(dir, "w1");
  ProxyProcess without_spill(
      dir,
      one_pool_config({.listen = listen,
                       .backends = {worker.address()},
                       .pool_keys = "response_spill = \"0\"",
                       .proxy_keys = "spill_dir = \"" + dir.file("missing") + "\"\n"}),
      listen, "without-spill");
  CHECK(send_request(listen, get_request("/ok"), 5s).status() == 200);
}

TEST_CASE("a body trickled past body_buffer is cut by client_min_rate and its worker freed",
          "[security][slow-clients]") {
  TempDir dir;
  ProxiedWorkers pool(
      dir,
      {.pool_keys = "body_buffer = \"1KiB\"\nclient_timeout = \"2s\"\nclient_min_rate = \"8KiB\""});
  const Address& listen = pool.listen();
  // 2 KiB at once (past body_buffer: the slot is taken), then a byte every
  // 500 ms: no gap reaches client_timeout, only the rate fails.
  SlowClient trickler;
  trickler.trickle_body(listen, 4096, 2048, 500ms, 40s);
  REQUIRE(eventually([&] { return trickler.started(); }, 10s));
  INFO(pool.proxy().log());
  CHECK(trickler.wait_closed(20s));
  // The worker is free again: a request is served at once.
  const Response response = send_request(listen, get_request("/after"), 5s);
  CHECK(response.status() == 200);
  CHECK(eventually([&] { return pool.proxy().log().find("client_min_rate") != std::string::npos; },
                   5s));
}

TEST_CASE("a response read slowly past response_buffer is cut by client_min_rate",
          "[security][slow-clients]") {
  TempDir dir;
  ProxiedWorkers pool(
      dir,
      {.pool_keys =
           "response_buffer = \"16KiB\"\nclient_timeout = \"2s\"\nclient_min_rate = \"64KiB\""});
  const Address& listen = pool.listen();
  SlowClient reader;
  reader.read_slowly(listen, 32 << 20, 256, 500ms, 60s);
  REQUIRE(eventually([&] { return reader.started(); }, 10s));
  // The kernel may still deliver what it had taken before the close: look at
  // the proxy's side, its log line and a worker free again.
  CHECK(eventually(
      [&] {
        return pool.proxy().log().find("client too slow reading its response") != std::string::npos;
      },
      40s));
  INFO(pool.proxy().log());
  const Response response = send_request(listen, get_request("/after"), 5s);
  CHECK(response.status() == 200);
}

TEST_CASE("a slow backend is not the client's fault: its time never counts against the client",
          "[security][slow-clients]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "client_timeout = \"1s\"\nclient_min_rate = \"1MiB\""});
  const Address& listen = pool.listen();
  // 8 pieces of 1 KiB, 400 ms apart: 2.8 s of a backend generating slowly.
  const Response dripped = send_request(listen, get_request("/drip?size=8192&drip_ms=400"), 20s);
  INFO(pool.proxy().log());
  CHECK(dripped.status() == 200);
  CHECK(dripped.body().size() == 8192);
  // A backend that thinks for 2.5 s before answering a request with a body.
  const Response slow = send_request(listen,
                                     make_request({{"REQUEST_METHOD", "POST"},
                                                   {"REQUEST_URI", "/think"},
                                                   {"QUERY_STRING", "sleep_ms=2500"}},
                                                  std::string(100 * 1024, 'x')),
                                     20s);
  CHECK(slow.status() == 200);
}
