// scgi-proxy upgraded in place (SIGUSR2) while clients send requests: the
// same PID, no failed request, counters that continue; and the upgrades that
// must fail (a new program that exits, one that cannot read the handed state
// before or after the exec) leave the running program serving.
//
// Each test starts scgi-proxy from a copy of the built binary in its own
// folder: an upgrade runs the program file the daemon was started from, so
// replacing that copy is how a test chooses the "new program".
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

#include "../support/harness.hpp"
#include "../support/scrape_checks.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// What the log says once an upgrade ended, one way or the other.
constexpr const char* kTookOver = "took over from";
constexpr const char* kCheckRefused = "; this program serves on";
constexpr const char* kPreviousBack = "serves on, nothing lost";
constexpr const char* kPausing = "pausing the front doors";

// An upgrade checks, pauses, waits for requests in flight and execs: seconds
// at most on a busy machine.
constexpr auto kUpgradeBound = 30s;

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

// scgi-proxy started from bin/scgi-proxy in the test's folder, a copy of the
// built binary that the test may replace before an upgrade.
class UpgradableProxy {
 public:
  UpgradableProxy(const TempDir& dir, const std::string& config, const Address& listen,
                  std::uint16_t metrics_port)
      : dir_(dir), program_(dir.file("bin/scgi-proxy")), metrics_port_(metrics_port) {
    std::filesystem::create_directory(dir.file("bin"));
    install_built();
    dir.write("proxy.toml", config);
    process_ =
        Process::start({program_, "--config", dir.file("proxy.toml")}, dir.file("proxy.log"));
    if (!wait_until_accepting(listen))
      throw std::runtime_error("scgi-proxy did not start: " + process_.log());
    if (!eventually([&] { return scrape().find("scgi_build_info") != std::string::npos; }, 20s))
      throw std::runtime_error("scgi-proxy's /metrics did not answer: " + process_.log());
  }

  Process& process() { return process_; }
  std::string log() const { return process_.log(); }
  std::string scrape() const { return http_get(metrics_port_, "/metrics"); }

  // The program file becomes `script` (made executable), replaced the way a
  // package upgrade replaces it: a new file renamed over the old one.
  void install(const std::string& script) {
    dir_.write("bin/.next", script);
    std::filesystem::permissions(dir_.file("bin/.next"), std::filesystem::perms(0755));
    std::filesystem::rename(dir_.file("bin/.next"), program_);
  }
  // The program file becomes the built binary again.
  void install_built() {
    std::filesystem::copy_file(built_binary("scgi-proxy"), dir_.file("bin/.next"),
                               std::filesystem::copy_options::overwrite_existing);
    std::filesystem::permissions(dir_.file("bin/.next"), std::filesystem::perms(0755));
    std::filesystem::rename(dir_.file("bin/.next"), program_);
  }

  // SIGUSR2, then waits (bounded) for one more `outcome` line in the log.
  bool upgrade(const std::string& outcome) {
    const std::size_t before = occurrences(log(), outcome);
    process_.signal(SIGUSR2);
    return eventually([&] { return occurrences(log(), outcome) > before; }, kUpgradeBound);
  }

 private:
  const TempDir& dir_;
  std::string program_;
  std::uint16_t metrics_port_;
  Process process_;
};

// Clients sending requests back to back, each on a new connection, until
// stopped; every answer other than a 200 is kept for the report. One client
// per URI: a slow one keeps a request in flight at nearly every moment, so an
// upgrade that does not wait for requests in flight shows.
class ClientLoad {
 public:
  explicit ClientLoad(const Address& target, const std::vector<std::string>& uris = {
                                                 "/fast?sleep_ms=2", "/fast?sleep_ms=2",
                                                 "/fast?sleep_ms=2", "/slow?sleep_ms=300"}) {
    for (const std::string& uri : uris)
      threads_.emplace_back([this, target, uri] {
        while (!stop_.load()) {
          const Response response = send_request(target, get_request(uri), 10s);
          ++sent_;
          if (response.status() == 200) continue;
          std::lock_guard lock(mutex_);
          failures_.push_back(fmt::format("status {}, {}", response.status(),
                                          response.error.empty() ? "no error" : response.error));
        }
      });
  }
  ~ClientLoad() { stop(); }
  ClientLoad(const ClientLoad&) = delete;
  ClientLoad& operator=(const ClientLoad&) = delete;

  void stop() {
    stop_.store(true);
    for (auto& thread : threads_)
      if (thread.joinable()) thread.join();
  }
  int sent() const { return sent_.load(); }
  std::vector<std::string> failures() const {
    std::lock_guard lock(mutex_);
    return failures_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> failures_;
  std::vector<std::thread> threads_;
};

const std::string kBuildInfo =
    fmt::format(R"(scgi_build_info{{program="scgi-proxy",version="{}"}})", SCGI_VERSION);

// The requests of pool "app" counted so far (every status).
double requests_total(const std::string& scrape) {
  return metric_sum(scrape, "scgi_requests_total");
}

// One upgrade under load that must succeed: awaited by its log line, then the
// same process serves, counters continued and a request right after it is served.
void upgrade_in_place(UpgradableProxy& proxy, const Address& listen) {
  const pid_t pid = proxy.process().pid();
  const std::string before = proxy.scrape();
  REQUIRE(requests_total(before) > 0);
  const bool took_over = proxy.upgrade(kTookOver);
  INFO(proxy.log());
  REQUIRE(took_over);
  CHECK(proxy.process().running());
  CHECK(proxy.process().pid() == pid);
  CHECK(send_request(listen, get_request("/right-after"), 5s).status() == 200);
  const std::string after = proxy.scrape();
  CHECK(metric_value(after, kBuildInfo) == 1);
  INFO(fmt::format("{}", fmt::join(went_down(before, after), "\n")));
  CHECK(went_down(before, after).empty());
  CHECK(requests_total(after) > requests_total(before));
}

// Requests served since `scrape` was taken, waited for (bounded): the load
// reaches the proxy.
bool load_flows(UpgradableProxy& proxy, double more = 50) {
  const double start = requests_total(proxy.scrape());
  return eventually([&] { return requests_total(proxy.scrape()) >= start + more; }, 20s);
}

// The scripts that stand in for a broken new program: they rewrite the
// handed state's format to 99 (a format no build reads), then run the real
// binary. `when` is the bash test that picks the run to corrupt.
std::string state_corrupting_script(const TempDir& dir, const std::string& when) {
  return fmt::format(
      "#!/bin/bash\n"
      "if {when}; then\n"
      "  fd=$SCGI_UPGRADE_STATE_FD\n"
      "  sed 's/^{{\"format\":1,/{{\"format\":99,/' /proc/self/fd/$fd > {copy}\n"
      "  eval \"exec $fd<{copy}\"\n"
      "fi\n"
      "exec {real} \"$@\"\n",
      fmt::arg("when", when), fmt::arg("copy", dir.file("state-format-99.json")),
      fmt::arg("real", built_binary("scgi-proxy")));
}
constexpr const char* kInCheck = "[[ \" $* \" == *\" --upgrade-check \"* ]]";
constexpr const char* kAtRealStart =
    "[[ -n \"$SCGI_UPGRADE_STATE_FD\" && \" $* \" != *\" --upgrade-check \"* ]]";

// Pool "app" of two sample workers (each serves one request at a time: the
// slow client's requests keep one busy, the fast ones go to the other).
struct OnePoolProxy {
  SampleWorker first;
  SampleWorker second;
  Address listen;
  std::uint16_t metrics_port;
  UpgradableProxy proxy;
  explicit OnePoolProxy(const TempDir& dir, std::uint16_t metrics_port_in = free_port())
      : first(dir, "w1"),
        second(dir, "w2"),
        listen(loopback(free_port())),
        metrics_port(metrics_port_in),
        proxy(dir,
              one_pool_config({.listen = listen,
                               .backends = {first.address(), second.address()},
                               .metrics_port = metrics_port}),
              listen, metrics_port) {}
};

void check_no_failures(ClientLoad& load, int at_least) {
  load.stop();
  const auto failures = load.failures();
  INFO(fmt::format("{} requests; failed: {}", load.sent(), fmt::join(failures, "; ")));
  CHECK(failures.empty());
  CHECK(load.sent() >= at_least);
}

// A scrape whose request is only half sent: the rest comes later, maybe to
// the next image.
class HalfSentScrape {
 public:
  explicit HalfSentScrape(std::uint16_t port) : fd_(connect_to(loopback(port))) {
    if (fd_ < 0 || ::send(fd_, "GET /metr", 9, MSG_NOSIGNAL) != 9)
      throw std::runtime_error("cannot begin a scrape");
  }
  ~HalfSentScrape() { ::close(fd_); }
  HalfSentScrape(const HalfSentScrape&) = delete;
  HalfSentScrape& operator=(const HalfSentScrape&) = delete;
  Response finish() { return send_request_on(fd_, "ics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 5s); }

 private:
  int fd_;
};

}  // namespace

TEST_CASE("five upgrades in a row under load: the same PID, no failed request, counters go on",
          "[proxy][upgrade]") {
  TempDir dir;
  OnePoolProxy setup(dir);
  UpgradableProxy& proxy = setup.proxy;
  ClientLoad load(setup.listen);
  REQUIRE(load_flows(proxy));
  // Scrapes back to back meanwhile: each answered, no counter ever lower.
  ScrapeLoad scrapes(setup.metrics_port);
  for (int i = 1; i <= 5; ++i) {
    CAPTURE(i);
    upgrade_in_place(proxy, setup.listen);
    INFO(proxy.log());
    REQUIRE(occurrences(proxy.log(), kTookOver) == static_cast<std::size_t>(i));
    REQUIRE(load_flows(proxy));
  }
  check_no_failures(load, 200);
  scrapes.stop();
  INFO(fmt::format("{} scrapes; failed: {}", scrapes.scrapes(),
                   fmt::join(scrapes.failures(), "; ")));
  CHECK(scrapes.failures().empty());
  CHECK(scrapes.scrapes() >= 50);
  const std::string log = proxy.log();
  INFO(log);
  CHECK(log.find("upgrade failed") == std::string::npos);
  CHECK(occurrences(log, "scgi-proxy running") == 6);
}

TEST_CASE("a new program that exits at start is refused and the running one serves on",
          "[proxy][upgrade]") {
  TempDir dir;
  OnePoolProxy setup(dir);
  UpgradableProxy& proxy = setup.proxy;
  const pid_t pid = proxy.process().pid();
  ClientLoad load(setup.listen);
  REQUIRE(load_flows(proxy));

  proxy.install("#!/bin/sh\nexit 1\n");
  const bool refused = proxy.upgrade(kCheckRefused);
  {
    const std::string log = proxy.log();
    INFO(log);
    REQUIRE(refused);
    CHECK(log.find("upgrade failed: ") != std::string::npos);
    CHECK(log.find(kTookOver) == std::string::npos);
  }
  CHECK(proxy.process().running());
  CHECK(proxy.process().pid() == pid);
  CHECK(send_request(setup.listen, get_request("/after-the-refusal"), 5s).status() == 200);
  REQUIRE(load_flows(proxy));

  // The real binary back: the next upgrade goes through.
  proxy.install_built();
  upgrade_in_place(proxy, setup.listen);
  REQUIRE(load_flows(proxy));
  check_no_failures(load, 100);
}

TEST_CASE(
    "a new program that cannot read the handed state fails its check and the running one "
    "serves on",
    "[proxy][upgrade]") {
  TempDir dir;
  OnePoolProxy setup(dir);
  UpgradableProxy& proxy = setup.proxy;
  const pid_t pid = proxy.process().pid();
  ClientLoad load(setup.listen);
  REQUIRE(load_flows(proxy));

  proxy.install(state_corrupting_script(dir, kInCheck));
  const bool refused = proxy.upgrade(kCheckRefused);
  {
    const std::string log = proxy.log();
    INFO(log);
    REQUIRE(refused);
    CHECK(log.find("its format is 99") != std::string::npos);
    CHECK(log.find(kTookOver) == std::string::npos);
    // Refused before the pause: the front doors never closed.
    CHECK(log.find(kPausing) == std::string::npos);
  }
  CHECK(proxy.process().running());
  CHECK(proxy.process().pid() == pid);
  CHECK(send_request(setup.listen, get_request("/after-the-refusal"), 5s).status() == 200);
  REQUIRE(load_flows(proxy));

  proxy.install_built();
  upgrade_in_place(proxy, setup.listen);
  check_no_failures(load, 100);
}

TEST_CASE(
    "a new image that refuses the state after the exec runs the previous program again, "
    "nothing lost",
    "[proxy][upgrade]") {
  TempDir dir;
  OnePoolProxy setup(dir);
  UpgradableProxy& proxy = setup.proxy;
  const pid_t pid = proxy.process().pid();
  ClientLoad load(setup.listen);
  REQUIRE(load_flows(proxy));

  // Its check passes (the state untouched); its real start reads format 99.
  proxy.install(state_corrupting_script(dir, kAtRealStart));
  const std::string before = proxy.scrape();
  ScrapeLoad scrapes(setup.metrics_port);
  const bool previous_back = proxy.upgrade(kPreviousBack);
  {
    const std::string log = proxy.log();
    INFO(log);
    REQUIRE(previous_back);
    CHECK(log.find(kPausing) != std::string::npos);  // it did get as far as the exec
    CHECK(log.find(
              "upgrade failed: the new program cannot read the handed state: its format is 99") !=
          std::string::npos);
    CHECK(log.find(kTookOver) == std::string::npos);
  }
  CHECK(proxy.process().running());
  CHECK(proxy.process().pid() == pid);
  CHECK(send_request(setup.listen, get_request("/after-the-return"), 5s).status() == 200);
  const std::string after = proxy.scrape();
  CHECK(metric_value(after, kBuildInfo) == 1);
  INFO(fmt::format("{}", fmt::join(went_down(before, after), "\n")));
  CHECK(went_down(before, after).empty());
  scrapes.stop();
  INFO(fmt::format("{} scrapes; failed: {}", scrapes.scrapes(),
                   fmt::join(scrapes.failures(), "; ")));
  CHECK(scrapes.failures().empty());
  REQUIRE(load_flows(proxy));

  proxy.install_built();
  upgrade_in_place(proxy, setup.listen);
  check_no_failures(load, 100);
}

TEST_CASE(
    "Unix and TCP listeners serve on after an upgrade, a connection made during the "
    "switch included",
    "[proxy][upgrade]") {
  TempDir dir;
  SampleWorker worker(dir, "w1");
  const Address unix_listen{Address::Kind::unix_socket, {}, 0, dir.file("proxy.sock")};
  const Address tcp_listen = loopback(free_port());
  const std::uint16_t metrics_port = free_port();
  UpgradableProxy proxy(
      dir,
      fmt::format("[metrics]\nlisten = \"127.0.0.1:{}\"\n"
                  "[[pool]]\nname = \"over-unix\"\nlisten = \"{}\"\nbackends = [\"{}\"]\n"
                  "[[pool]]\nname = \"over-tcp\"\nlisten = \"{}\"\nbackends = [\"{}\"]\n",
                  metrics_port, unix_listen.to_string(), worker.address().to_string(),
                  tcp_listen.to_string(), worker.address().to_string()),
      unix_listen, metrics_port);
  REQUIRE(wait_until_accepting(tcp_listen));
  CHECK(send_request(unix_listen, get_request("/before"), 5s).status() == 200);
  CHECK(send_request(tcp_listen, get_request("/before"), 5s).status() == 200);

  // A slow request holds the switch open: the old image waits for it with
  // its listeners paused, and the connections made meanwhile wait in the
  // kernel's backlog for the new image.
  auto slow = std::async(std::launch::async, [&] {
    return send_request(tcp_listen, get_request("/slow?sleep_ms=3000"), 20s);
  });
  REQUIRE(
      eventually([&] { return metric_sum(proxy.scrape(), "scgi_requests_in_flight") >= 1; }, 10s));
  proxy.process().signal(SIGUSR2);
  REQUIRE(eventually([&] { return proxy.log().find(kPausing) != std::string::npos; }, 15s));
  // The pause closes each thread's acceptor right after that line; the slow
  // request keeps the switch going for seconds longer.
  std::this_thread::sleep_for(300ms);
  const int during_unix = connect_to(unix_listen);
  const int during_tcp = connect_to(tcp_listen);
  CHECK(during_unix >= 0);
  CHECK(during_tcp >= 0);
  REQUIRE(
      eventually([&] { return proxy.log().find(kTookOver) != std::string::npos; }, kUpgradeBound));
  INFO(proxy.log());
  // Sent once the new image runs: it accepted them from the backlog.
  if (during_unix >= 0) {
    CHECK(send_request_on(during_unix, get_request("/during"), 5s).status() == 200);
    ::close(during_unix);
  }
  if (during_tcp >= 0) {
    CHECK(send_request_on(during_tcp, get_request("/during"), 5s).status() == 200);
    ::close(during_tcp);
  }
  CHECK(slow.get().status() == 200);  // finished by the old image

  CHECK(std::filesystem::exists(unix_listen.path));
  CHECK(send_request(unix_listen, get_request("/after"), 5s).status() == 200);
  CHECK(send_request(tcp_listen, get_request("/after"), 5s).status() == 200);
  const std::string scrape = proxy.scrape();
  CHECK(metric_value(scrape, R"(scgi_requests_total{code="200",pool="over-unix"})") == 3);
  CHECK(metric_value(scrape, R"(scgi_requests_total{code="200",pool="over-tcp"})") == 4);
  CHECK(exited_with(proxy.process().stop(), 0));
}

TEST_CASE("a backend found down stays down through an upgrade and is probed, not tried",
          "[proxy][upgrade]") {
  TempDir dir;
  SampleWorker alive(dir, "alive");
  const Address dead = loopback(free_port());  // nothing listens there
  const Address listen = loopback(free_port());
  const std::uint16_t metrics_port = free_port();
  UpgradableProxy proxy(
      dir,
      one_pool_config(
          {.listen = listen, .backends = {alive.address(), dead}, .metrics_port = metrics_port}),
      listen, metrics_port);
  const std::string dead_up = "scgi_backend_up{backend=\"" + dead.to_string() + "\",pool=\"app\"}";
  // Requests find it refusing: it is marked down (they are retried on the other).
  REQUIRE(eventually([&] {
    send_request(listen, get_request("/"), 5s);
    return metric_value(proxy.scrape(), dead_up) == 0;
  }));
  const double errors_before = metric_sum(proxy.scrape(), "scgi_backend_errors_total");
  REQUIRE(proxy.upgrade(kTookOver));
  INFO(proxy.log());
  // Down from the first moment, before any request could try it.
  const std::string after = proxy.scrape();
  CHECK(metric_value(after, dead_up) == 0);
  for (int i = 0; i < 20; ++i)
    CHECK(send_request(listen, get_request("/"), 5s).status() == 200);
  // Not tried by those requests: no connect error more than before.
  CHECK(metric_sum(proxy.scrape(), "scgi_backend_errors_total") == errors_before);
}

TEST_CASE("a scrape begun before an upgrade is answered by the next image", "[proxy][upgrade]") {
  TempDir dir;
  OnePoolProxy setup(dir);
  UpgradableProxy& proxy = setup.proxy;
  REQUIRE(send_request(setup.listen, get_request("/before"), 5s).status() == 200);

  // Both must send the rest within 3 s of connecting: the upgrade is quick
  // without load, and the new image gives each the time it had left.
  HalfSentScrape half_sent(setup.metrics_port);
  const int silent = connect_to(loopback(setup.metrics_port));  // sends nothing yet
  REQUIRE(silent >= 0);
  upgrade_in_place(proxy, setup.listen);
  // Each sends the rest to the image that runs now, within its 3 s.
  const Response late = half_sent.finish();
  INFO(late.error << " " << late.bytes.substr(0, 80));
  CHECK(late.bytes.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(late.bytes.find("scgi_upgrades_total{result=\"done\"} 1") != std::string::npos);
  const Response from_silent =
      send_request_on(silent, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", 5s);
  ::close(silent);
  CHECK(from_silent.bytes.rfind("HTTP/1.1 200 OK", 0) == 0);
}

namespace {

// A request shutdown_timeout would hold up: an upgrade that waited for a head
// still arriving would take all of it.
constexpr const char* kLongShutdown = "shutdown_timeout = \"20s\"";
// A switch that does not wait for such a head: well under shutdown_timeout.
constexpr auto kQuickSwitch = 5s;

// scgi-proxy with pool "app" on one sample worker, shutdown_timeout long.
struct HeadProxy {
  SampleWorker worker;
  Address listen;
  UpgradableProxy proxy;
  HeadProxy(const TempDir& dir, const std::string& pool_keys,
            std::uint16_t metrics_port = free_port())
      : worker(dir, "w1"),
        listen(loopback(free_port())),
        proxy(dir,
              one_pool_config({.listen = listen,
                               .backends = {worker.address()},
                               .pool_keys = pool_keys,
                               .metrics_port = metrics_port,
                               .proxy_keys = kLongShutdown}),
              listen, metrics_port) {}
};

bool send_bytes(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

// A client sends the first `sent_before` bytes of its request head, then
// nothing while scgi-proxy upgrades; the switch must not wait for it, and the
// new image serves the request once the rest arrives.
void head_goes_on_in_the_new_image(std::size_t sent_before) {
  TempDir dir;
  // queue_time off: the worker echoes the head exactly as the client sent it.
  HeadProxy setup(dir, "client_timeout = \"30s\"\nqueue_time = false");
  UpgradableProxy& proxy = setup.proxy;
  const pid_t pid = proxy.process().pid();
  const std::string request = get_request("/begun-before-the-upgrade?echo=1");
  REQUIRE(sent_before < request.size());
  const int client = connect_to(setup.listen);
  REQUIRE(client >= 0);
  REQUIRE(send_bytes(client, std::string_view(request).substr(0, sent_before)));
  // Accepted and read by the old image before the upgrade begins.
  std::this_thread::sleep_for(500ms);

  const auto began = std::chrono::steady_clock::now();
  proxy.process().signal(SIGUSR2);
  const bool took_over =
      eventually([&] { return proxy.log().find(kTookOver) != std::string::npos; }, kUpgradeBound);
  const auto took = std::chrono::steady_clock::now() - began;
  INFO(proxy.log());
  REQUIRE(took_over);
  CHECK(took < kQuickSwitch);
  CHECK(proxy.process().pid() == pid);

  REQUIRE(send_bytes(client, std::string_view(request).substr(sent_before)));
  const Response response = read_response(client, 10s);
  ::close(client);
  CHECK(response.status() == 200);
  CHECK(response.body() == request);  // echo=1: the head as the worker received it
  // Counted once, by the image that served it, and not as a slow client.
  const std::string scrape = proxy.scrape();
  CHECK(metric_value(scrape, R"(scgi_requests_total{code="200",pool="app"})") == 1);
  CHECK(metric_sum(scrape, "scgi_requests_total") == 1);
  CHECK(proxy.log().find("header bytes in client_timeout") == std::string::npos);
}

}  // namespace

TEST_CASE("a request head half sent does not hold an upgrade up and is served by the new image",
          "[proxy][upgrade]") {
  head_goes_on_in_the_new_image(get_request("/begun-before-the-upgrade?echo=1").size() / 2);
}

TEST_CASE("a connection that sent nothing yet does not hold an upgrade up and is served after it",
          "[proxy][upgrade]") {
  head_goes_on_in_the_new_image(0);
}

TEST_CASE("an upgrade does not give a slow client's request head more time", "[proxy][upgrade]") {
  TempDir dir;
  HeadProxy setup(dir, "client_timeout = \"4s\"");
  UpgradableProxy& proxy = setup.proxy;
  const std::string request = get_request("/too-slow");
  const auto connected = std::chrono::steady_clock::now();
  const int client = connect_to(setup.listen);
  REQUIRE(client >= 0);
  REQUIRE(send_bytes(client, std::string_view(request).substr(0, request.size() / 2)));
  std::this_thread::sleep_for(1500ms);

  // Two upgrades, each of which must neither wait for the head nor restart its deadline.
  for (int i = 1; i <= 2; ++i) {
    CAPTURE(i);
    REQUIRE(proxy.upgrade(kTookOver));
  }
  const auto upgraded = std::chrono::steady_clock::now() - connected;
  INFO(proxy.log());
  CHECK(upgraded < 3500ms);  // both done before the head's deadline

  const Response response = read_response(client, 10s);
  const auto answered = std::chrono::steady_clock::now() - connected;
  ::close(client);
  // Closed unanswered at client_timeout from the connect, not from an upgrade
  // (a little slack for the machine), and counted once as a 408.
  CHECK(response.closed);
  CHECK(response.bytes.empty());
  CHECK(answered < 5s);
  CHECK(answered >= 3500ms);
  CHECK(eventually(
      [&] { return proxy.log().find("header bytes in client_timeout") != std::string::npos; }, 5s));
  const std::string scrape = proxy.scrape();
  CHECK(metric_value(scrape, R"(scgi_requests_total{code="408",pool="app"})") == 1);
  CHECK(metric_sum(scrape, "scgi_requests_total") == 1);
}

TEST_CASE(
    "a request head half sent goes on in the previous program when the new one gives the "
    "state back",
    "[proxy][upgrade]") {
  TempDir dir;
  // queue_time off: the worker echoes the head exactly as the client sent it.
  HeadProxy setup(dir, "client_timeout = \"30s\"\nqueue_time = false");
  UpgradableProxy& proxy = setup.proxy;
  const std::string request = get_request("/begun-before-a-failed-upgrade?echo=1");
  const int client = connect_to(setup.listen);
  REQUIRE(client >= 0);
  REQUIRE(send_bytes(client, std::string_view(request).substr(0, request.size() / 2)));
  std::this_thread::sleep_for(500ms);

  proxy.install(state_corrupting_script(dir, kAtRealStart));
  const auto began = std::chrono::steady_clock::now();
  const bool previous_back = proxy.upgrade(kPreviousBack);
  const auto took = std::chrono::steady_clock::now() - began;
  INFO(proxy.log());
  REQUIRE(previous_back);
  CHECK(took < kQuickSwitch);

  REQUIRE(send_bytes(client, std::string_view(request).substr(request.size() / 2)));
  const Response response = read_response(client, 10s);
  ::close(client);
  CHECK(response.status() == 200);
  CHECK(response.body() == request);
  CHECK(metric_sum(proxy.scrape(), "scgi_requests_total") == 1);
}

TEST_CASE("a connection to a pool a reload removed does not fail the next upgrade",
          "[proxy][upgrade]") {
  TempDir dir;
  OnePoolProxy setup(dir);
  UpgradableProxy& proxy = setup.proxy;
  REQUIRE(send_request(setup.listen, get_request("/before"), 5s).status() == 200);
  // A second pool, a client connected to it that has sent nothing, then the
  // pool removed by a reload: its connection lives on in the old exchange.
  const Address other = loopback(free_port());
  const std::string base = one_pool_config({.listen = setup.listen,
                                            .backends = {setup.first.address()},
                                            .metrics_port = setup.metrics_port});
  dir.write("proxy.toml", base + "[[pool]]\nname = \"other\"\nlisten = \"" + other.to_string() +
                              "\"\nbackends = [\"" + setup.second.address().to_string() + "\"]\n");
  const std::size_t reloads = occurrences(proxy.log(), " applied");
  proxy.process().signal(SIGHUP);
  INFO(proxy.log());
  REQUIRE(eventually([&] { return occurrences(proxy.log(), " applied") > reloads; }));
  REQUIRE(wait_until_accepting(other));
  const int silent = connect_to(other);
  REQUIRE(silent >= 0);
  dir.write("proxy.toml", base);
  proxy.process().signal(SIGHUP);
  REQUIRE(eventually([&] { return occurrences(proxy.log(), " applied") > reloads + 1; }));

  // The upgrade goes through (the connection is not handed: the next image
  // has no pool for it); it used to be refused after the exec, then fatal.
  upgrade_in_place(proxy, setup.listen);
  ::close(silent);
  CHECK(proxy.process().running());
}
