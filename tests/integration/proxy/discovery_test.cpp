// DNS discovery against a real DNS server: Debian's dnsmasq on a loopback
// port, whose records the test changes while scgi-load runs. Sample workers
// listen on 127.0.0.2-4 with one port, so that each A record is one backend.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

constexpr const char* kDnsmasq = "/usr/sbin/dnsmasq";
constexpr const char* kName = "app.test";

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t count = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++count;
  return count;
}

// dnsmasq answering for *.test from a hosts file, re-read on SIGHUP; any
// other name is refused (no upstream), a name of .test it does not list gets
// NXDOMAIN (--local), as an authoritative server would answer. Without
// `authoritative` it forwards what it does not know, the AAAA question for
// app.test included, and having no upstream refuses it.
class DnsServer {
 public:
  explicit DnsServer(const TempDir& dir, bool authoritative = true)
      : dir_(dir), hosts_(dir.file("hosts")) {
    REQUIRE(std::filesystem::exists(kDnsmasq));  // Debian's dnsmasq: scripts/install-deps.sh
    dir_.write("hosts", "");
    for (int attempt = 0; attempt < 5 && !process_.running(); ++attempt) {
      port_ = free_port();
      std::vector<std::string> argv{kDnsmasq,
                                    "--no-daemon",
                                    "--conf-file=/dev/null",
                                    "--port=" + std::to_string(port_),
                                    "--listen-address=127.0.0.1",
                                    "--bind-interfaces",
                                    "--no-resolv",
                                    "--no-hosts",
                                    "--addn-hosts=" + hosts_,
                                    "--local-ttl=0",
                                    "--pid-file="};
      if (authoritative) argv.push_back("--local=/test/");
      process_ = Process::start(argv, dir.file("dnsmasq.log"));
      eventually([&] { return reads() > 0 || !process_.running(); }, 5s);
    }
    REQUIRE(process_.running());
  }

  Address address() const { return loopback(port_); }
  Process& process() { return process_; }

  // Replaces the A records of app.test; returns once dnsmasq has re-read them.
  void set_records(const std::vector<std::string>& ips) {
    std::string text;
    for (const std::string& ip : ips)
      text += ip + " " + kName + "\n";
    const std::size_t before = reads();
    dir_.write("hosts", text);
    process_.signal(SIGHUP);
    REQUIRE(eventually([&] { return reads() > before; }, 5s));
  }

 private:
  std::size_t reads() const { return count_of(process_.log(), "read " + hosts_); }

  const TempDir& dir_;
  std::string hosts_;
  std::uint16_t port_ = 0;
  Process process_;
};

// A sample worker on 127.0.0.N:port, logging a line per request.
struct HostWorker {
  HostWorker(const TempDir& dir, const std::string& ip, std::uint16_t port, const std::string& name)
      : ip(ip), port(port), backend(ip + ":" + std::to_string(port)) {
    process = Process::start({built_binary("scgi-sample-worker"), "--host", ip, "--port",
                              std::to_string(port), "--name", name, "--verbose"},
                             dir.file(name + ".log"));
    Address address{Address::Kind::tcp, ip, port, {}};
    REQUIRE(wait_until_accepting(address));
  }
  // Requests it has answered so far, by its log.
  std::size_t answered() const { return count_of(process.log(), " answered "); }
  // The same by its own count, exact at once: it answers one request directly
  // (that one included). -1 when it does not answer.
  long asked_count() const {
    const Response response =
        send_request({Address::Kind::tcp, ip, port, {}}, get_request("/count"));
    const std::string count = response.header("X-Request-Count");
    return count.empty() ? -1 : std::stol(count);
  }

  std::string ip;
  std::uint16_t port;
  std::string backend;  // the proxy's name for it
  Process process;
};

struct DiscoverPool {
  Address listen;
  std::uint16_t metrics_port;
  std::uint16_t worker_port;
  Address resolver;
  std::string extra{};
};

std::string discover_config(const DiscoverPool& spec) {
  return "[proxy]\nthreads = 2\n[metrics]\nlisten = \"127.0.0.1:" +
         std::to_string(spec.metrics_port) + "\"\n[[pool]]\nname = \"app\"\nlisten = \"" +
         spec.listen.to_string() + "\"\ndiscover = \"dns:" + kName + ":" +
         std::to_string(spec.worker_port) + "\"\ndiscover_interval = \"200ms\"\nresolver = \"" +
         spec.resolver.to_string() + "\"\n" + spec.extra + "\n";
}

// Whether the proxy has `backend` in pool app (removed ones have no series).
bool has_backend(std::uint16_t metrics_port, const std::string& backend) {
  return metric_value(http_get(metrics_port, "/metrics"),
                      "scgi_backend_up{backend=\"" + backend + "\",pool=\"app\"}") == 1;
}

double scraped(std::uint16_t metrics_port, const std::string& series) {
  return metric_value(http_get(metrics_port, "/metrics"), series);
}

// The timestamp ("2026-11-25T02:00:51.307Z") of the first log line containing `needle`.
std::string time_of(const std::string& log, const std::string& needle) {
  const auto at = log.find(needle);
  if (at == std::string::npos) return {};
  const auto line_start = log.rfind('\n', at);
  return log.substr(line_start == std::string::npos ? 0 : line_start + 1, 24);
}

// Lines of a worker's log for requests answered since `since` (same timestamp
// format; the same millisecond counts, as a quick request may end within it).
std::size_t answered_after(const std::string& log, const std::string& since) {
  std::size_t count = 0;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line))
    if (line.find(" answered ") != std::string::npos && line.substr(0, 24) >= since) ++count;
  return count;
}

}  // namespace

TEST_CASE("discovered backends follow DNS records under load without a failed request",
          "[proxy][discovery]") {
  TempDir dir;
  DnsServer dns(dir);
  dns.set_records({"127.0.0.2"});
  const std::uint16_t port = free_port();
  HostWorker w2(dir, "127.0.0.2", port, "w2");
  HostWorker w3(dir, "127.0.0.3", port, "w3");
  HostWorker w4(dir, "127.0.0.4", port, "w4");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics = free_port();
  ProxyProcess proxy(dir, discover_config({listen, metrics, port, dns.address()}), listen);
  REQUIRE(eventually([&] { return has_backend(metrics, w2.backend); }, 5s));

  // Quick requests and slow ones, which keep each worker (one request at a
  // time) almost always busy with one when a record goes.
  Process load =
      start_load(dir, listen, "8s", "load.json", {"--mix", "4:/fast;1:/slow?sleep_ms=300"});
  REQUIRE(eventually([&] { return w2.answered() >= 10; }));

  // Each address that appears takes requests; each that vanishes is drained
  // and removed, and takes none after (until the load ends).
  const auto removed = [&](const HostWorker& gone) {
    return eventually([&] {
      return proxy.process().log().find(gone.backend + " drained; removed") != std::string::npos;
    });
  };
  dns.set_records({"127.0.0.2", "127.0.0.3"});
  REQUIRE(eventually([&] { return has_backend(metrics, w3.backend); }, 5s));
  const std::size_t w3_at_start = w3.answered();
  CHECK(eventually([&] { return w3.answered() > w3_at_start; }));

  dns.set_records({"127.0.0.3"});
  REQUIRE(removed(w2));
  const long w2_at_removal = w2.asked_count();

  dns.set_records({"127.0.0.3", "127.0.0.4"});
  REQUIRE(eventually([&] { return has_backend(metrics, w4.backend); }, 5s));
  const std::size_t w4_at_start = w4.answered();
  CHECK(eventually([&] { return w4.answered() > w4_at_start; }));

  dns.set_records({"127.0.0.4"});
  REQUIRE(removed(w3));
  const long w3_at_removal = w3.asked_count();

  const nlohmann::json report = finish_load(load);
  const std::string proxy_log = proxy.process().log();
  INFO(report.dump());
  INFO(proxy_log);
  CHECK(report["requests"].get<int>() > 50);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(w2.asked_count() == w2_at_removal + 1);  // only our own second look
  CHECK(w3.asked_count() == w3_at_removal + 1);

  // Requests in flight on a vanished address finished there, and none was cut.
  for (const HostWorker* gone : {&w2, &w3}) {
    const std::string drain_started = time_of(proxy_log, gone->backend + " left DNS; draining");
    REQUIRE_FALSE(drain_started.empty());
    CHECK(proxy_log.find(gone->backend + " drained; removed") != std::string::npos);
    const std::string worker_log = gone->process.log();
    CHECK(answered_after(worker_log, drain_started) >= 1);
    CHECK(worker_log.find("client gone") == std::string::npos);
  }
  CHECK(scraped(metrics, "scgi_discovered_backends{pool=\"app\"}") == 1);
  CHECK(scraped(metrics, "scgi_discovery_resolutions_total{pool=\"app\",result=\"ok\"}") > 10);
  CHECK(scraped(metrics, "scgi_discovery_resolutions_total{pool=\"app\",result=\"error\"}") == 0);
}

TEST_CASE("discovered backends stay when the DNS server dies or never answers",
          "[proxy][discovery]") {
  TempDir dir;
  DnsServer dns(dir);
  dns.set_records({"127.0.0.2"});
  const std::uint16_t port = free_port();
  HostWorker w2(dir, "127.0.0.2", port, "w2");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics = free_port();
  ProxyProcess proxy(dir, discover_config({listen, metrics, port, dns.address()}), listen);
  REQUIRE(eventually([&] { return has_backend(metrics, w2.backend); }, 5s));

  dns.process().stop();
  const std::string error_series =
      "scgi_discovery_resolutions_total{pool=\"app\",result=\"error\"}";
  REQUIRE(eventually([&] { return scraped(metrics, error_series) >= 3; }, 10s));
  for (int i = 0; i < 5; ++i)
    CHECK(send_request(listen, get_request("/while-dns-is-down")).status() == 200);
  // Logged when the state changed, not at every interval.
  CHECK(count_of(proxy.process().log(), "cannot resolve app.test") == 1);

  // A resolver that takes the question and never answers (a bound UDP socket
  // that nobody reads), given by a reload: discovery restarts and keeps w2.
  const int silent = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(silent >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(silent, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(silent, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  dir.write("proxy.toml",
            discover_config({listen, metrics, port, loopback(ntohs(address.sin_port))}));
  proxy.process().signal(SIGHUP);
  REQUIRE(eventually(
      [&] { return proxy.process().log().find("Timeout while contacting") != std::string::npos; },
      10s));
  for (int i = 0; i < 5; ++i)
    CHECK(send_request(listen, get_request("/while-dns-is-silent")).status() == 200);
  CHECK(scraped(metrics, "scgi_discovered_backends{pool=\"app\"}") == 1);
  ::close(silent);
  INFO(proxy.process().log());
  CHECK(proxy.process().log().find("discovery settings changed; restarting it") !=
        std::string::npos);
}

TEST_CASE("a name without records gives 503s and a clear log line until records appear",
          "[proxy][discovery]") {
  TempDir dir;
  DnsServer dns(dir);  // app.test: NXDOMAIN
  const std::uint16_t port = free_port();
  HostWorker w2(dir, "127.0.0.2", port, "w2");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics = free_port();
  ProxyProcess proxy(
      dir, discover_config({listen, metrics, port, dns.address(), "queue_timeout = \"300ms\""}),
      listen);
  REQUIRE(eventually(
      [&] {
        return proxy.process().log().find("DNS has no address for app.test") != std::string::npos;
      },
      5s));
  CHECK(send_request(listen, get_request("/before")).status() == 503);
  CHECK(scraped(metrics, "scgi_discovery_resolutions_total{pool=\"app\",result=\"empty\"}") >= 1);

  dns.set_records({"127.0.0.2"});
  REQUIRE(eventually([&] { return has_backend(metrics, w2.backend); }, 5s));
  const Response response = send_request(listen, get_request("/after"));
  CHECK(response.status() == 200);
  CHECK(response.header("X-Worker-Name") == "w2");
}

TEST_CASE("a DNS server that refuses AAAA questions still gives its A records",
          "[proxy][discovery]") {
  TempDir dir;
  DnsServer dns(dir, /*authoritative=*/false);
  const std::uint16_t port = free_port();
  HostWorker w2(dir, "127.0.0.2", port, "w2");
  dns.set_records({"127.0.0.2"});
  const Address listen = loopback(free_port());
  const std::uint16_t metrics = free_port();
  ProxyProcess proxy(dir, discover_config({listen, metrics, port, dns.address()}), listen);
  INFO(proxy.process().log());
  REQUIRE(eventually([&] { return has_backend(metrics, w2.backend); }, 5s));
  CHECK(send_request(listen, get_request("/")).status() == 200);
  CHECK(scraped(metrics, "scgi_discovery_resolutions_total{pool=\"app\",result=\"error\"}") == 0);
}

TEST_CASE("a reload turns a fixed pool into a discover pool and back", "[proxy][discovery]") {
  TempDir dir;
  DnsServer dns(dir);
  dns.set_records({"127.0.0.2"});
  const std::uint16_t port = free_port();
  HostWorker w2(dir, "127.0.0.2", port, "w2");
  HostWorker w3(dir, "127.0.0.3", port, "w3");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics = free_port();
  const auto fixed = [&] {
    return "[proxy]\nthreads = 2\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics) +
           "\"\n[[pool]]\nname = \"app\"\nlisten = \"" + listen.to_string() + "\"\nbackends = [\"" +
           w3.backend + "\"]\n";
  };
  ProxyProcess proxy(dir, fixed(), listen);
  CHECK(send_request(listen, get_request("/fixed")).header("X-Worker-Name") == "w3");
  // The metrics endpoint may open after the pool's listener: a failed scrape
  // below would look like a backend gone.
  REQUIRE(eventually([&] { return has_backend(metrics, w3.backend); }, 5s));

  dir.write("proxy.toml", discover_config({listen, metrics, port, dns.address()}));
  proxy.process().signal(SIGHUP);
  REQUIRE(eventually([&] { return !has_backend(metrics, w3.backend); }, 5s));
  REQUIRE(has_backend(metrics, w2.backend));
  for (int i = 0; i < 4; ++i)
    CHECK(send_request(listen, get_request("/discovered")).header("X-Worker-Name") == "w2");

  dir.write("proxy.toml", fixed());
  proxy.process().signal(SIGHUP);
  REQUIRE(eventually([&] { return !has_backend(metrics, w2.backend); }, 5s));
  for (int i = 0; i < 4; ++i)
    CHECK(send_request(listen, get_request("/fixed-again")).header("X-Worker-Name") == "w3");
  CHECK(metric_value(http_get(metrics, "/metrics"), "scgi_discovered_backends{pool=\"app\"}") ==
        -1);
}

TEST_CASE("an address back in DNS while it drains is undrained, not removed",
          "[proxy][discovery]") {
  TempDir dir;
  DnsServer dns(dir);
  dns.set_records({"127.0.0.2", "127.0.0.3"});
  const std::uint16_t port = free_port();
  HostWorker w2(dir, "127.0.0.2", port, "w2");
  HostWorker w3(dir, "127.0.0.3", port, "w3");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics = free_port();
  ProxyProcess proxy(dir, discover_config({listen, metrics, port, dns.address()}), listen);
  REQUIRE(eventually(
      [&] { return has_backend(metrics, w2.backend) && has_backend(metrics, w3.backend); }, 5s));

  // One slow request on each worker (each takes one at a time), so w2 drains
  // with a request in flight.
  std::vector<std::future<Response>> slow;
  for (int i = 0; i < 2; ++i)
    slow.push_back(std::async(std::launch::async, [&] {
      return send_request(listen, get_request("/slow?sleep_ms=1500"), 20s);
    }));
  REQUIRE(eventually(
      [&] {
        const std::string scrape = http_get(metrics, "/metrics");
        return metric_value(scrape, "scgi_requests_in_flight{backend=\"" + w2.backend +
                                        "\",pool=\"app\"}") == 1 &&
               metric_value(scrape, "scgi_requests_in_flight{backend=\"" + w3.backend +
                                        "\",pool=\"app\"}") == 1;
      },
      5s));
  dns.set_records({"127.0.0.3"});
  REQUIRE(eventually(
      [&] {
        return proxy.process().log().find(w2.backend + " left DNS; draining") != std::string::npos;
      },
      5s));
  dns.set_records({"127.0.0.2", "127.0.0.3"});
  REQUIRE(eventually(
      [&] {
        return proxy.process().log().find(w2.backend + " is back in DNS") != std::string::npos;
      },
      5s));

  for (auto& response : slow)
    CHECK(response.get().status() == 200);
  for (int i = 0; i < 6; ++i)
    CHECK(send_request(listen, get_request("/after")).status() == 200);
  CHECK(eventually([&] { return count_of(w2.process.log(), "\"GET\" \"/after\" ") > 0; }, 2s));
  INFO(proxy.process().log());
  CHECK(proxy.process().log().find(w2.backend + " drained; removed") == std::string::npos);
  CHECK(scraped(metrics, "scgi_discovered_backends{pool=\"app\"}") == 2);
}
