#include "scgi/runtime/metrics_server.hpp"
#include "scgi/runtime/program_upgrade.hpp"

#include <dirent.h>
#include <netinet/in.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <sys/socket.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "scgi/runtime/metric_families.hpp"

namespace scgi {
namespace {

// Scrapes served at once. civetweb gives each connection a whole thread until
// its request has arrived, so these many idle connections delay a scrape by
// up to kRequestTimeout (then they are closed); more are served in turn.
constexpr int kServingThreads = 4;
// The whole request (line and headers) must arrive by then, and a response
// must be taken within it. Prometheus sends its GET at once; 30 s (civetweb's
// default) let one silent connection hold the only thread for every scrape.
constexpr int kRequestTimeoutMs = 3000;

// The TCP port a socket is bound to locally; 0 when it is not a TCP/IP socket.
int local_port(int fd) {
  sockaddr_storage address{};
  socklen_t size = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0) return 0;
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in&>(address).sin_port);
  if (address.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<sockaddr_in6&>(address).sin6_port);
  return 0;
}

// Wakes civetweb's threads so that stopping it does not wait for them: its
// accepting thread looks for the stop request only between poll()s of up to
// 2 s (its SOCKET_TIMEOUT_QUANTUM, fixed at build time), and so does a thread
// waiting for a silent client. Shutting down every socket bound to the
// exporter's ports (the listening one and those it accepted) ends those polls
// at once. No other socket of this process has such a local port: the kernel
// never picks a bound port as the local port of an outgoing connection.
void wake_exporter_threads(const std::vector<int>& ports) {
  DIR* folder = ::opendir("/proc/self/fd");
  if (folder == nullptr) return;  // no /proc: the stop just takes up to 2 s longer
  while (const dirent* entry = ::readdir(folder)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == ::dirfd(folder)) continue;
    const int port = local_port(static_cast<int>(fd));
    for (const int exporter_port : ports)
      if (port != 0 && port == exporter_port) ::shutdown(static_cast<int>(fd), SHUT_RDWR);
  }
  ::closedir(folder);
}

// scgi_build_info: one series, always 1, its labels say what runs.
class BuildInfo final : public prometheus::Collectable {
 public:
  explicit BuildInfo(std::string program) : program_(std::move(program)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    auto family = metric_family("scgi_build_info",
                                "The running build: always 1, labelled by program and version",
                                prometheus::MetricType::Gauge);
    family.metric.push_back(gauge_metric({{"program", program_}, {"version", SCGI_VERSION}}, 1));
    auto upgrades = metric_family("scgi_upgrades_total",
                                  "Upgrades in place since the daemon started, by result",
                                  prometheus::MetricType::Counter);
    const UpgradeCounts counts = upgrade_counts();
    upgrades.metric.push_back(counter_metric({{"result", "done"}}, counts.done));
    upgrades.metric.push_back(counter_metric({{"result", "failed"}}, counts.failed));
    return {std::move(family), std::move(upgrades)};
  }

 private:
  std::string program_;
};

}  // namespace

MetricsServer::MetricsServer(Address address, std::unique_ptr<prometheus::Exposer> exposer)
    : address_(std::move(address)), exposer_(std::move(exposer)) {}

MetricsServer::~MetricsServer() {
  wake_exporter_threads(exposer_->GetListeningPorts());
  exposer_.reset();
}

std::unique_ptr<MetricsServer> MetricsServer::start(const Address& address,
                                                    const std::string& program,
                                                    std::string& error) {
  if (address.is_unix()) {
    error = "metrics.listen must be a TCP address, not " + address.to_string();
    return nullptr;
  }
  try {
    auto exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", address.to_string(),                   //
        "num_threads", std::to_string(kServingThreads),           //
        "request_timeout_ms", std::to_string(kRequestTimeoutMs),  //
        "enable_keep_alive", "no",                                // one scrape, one connection
    });
    std::unique_ptr<MetricsServer> server(new MetricsServer(address, std::move(exposer)));
    server->build_info_ = std::make_shared<BuildInfo>(program);
    server->add(server->build_info_);
    return server;
  } catch (const std::exception& e) {
    error = "cannot serve metrics on " + address.to_string() + ": " + e.what();
    return nullptr;
  }
}

void MetricsServer::add(const std::weak_ptr<prometheus::Collectable>& collectable) {
  exposer_->RegisterCollectable(collectable);
}

}  // namespace scgi
