// The pieces every integration test starts: a scratch folder, sample workers
// on free ports, and scgi-proxy with a configuration written for the test.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "net.hpp"
#include "process.hpp"

namespace scgi::test {

// A fresh folder under the system's temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// A binary built by this project: build/bin/NAME.
std::string built_binary(const std::string& name);

// One scgi-sample-worker on a free 127.0.0.1 port, ready when constructed.
class SampleWorker {
 public:
  SampleWorker(const TempDir& dir, const std::string& name);
  const Address& address() const { return address_; }
  Process& process() { return process_; }

 private:
  Address address_;
  Process process_;
};

// scgi-proxy running `config` (TOML), ready when `listen` accepts.
class ProxyProcess {
 public:
  ProxyProcess(const TempDir& dir, const std::string& config, const Address& listen,
               const std::string& name = "proxy");
  Process& process() { return process_; }
  const std::string& config_path() const { return config_path_; }

 private:
  std::string config_path_;
  Process process_;
};

// GET over plain HTTP/1.0 on loopback (for /metrics); the whole response.
std::string http_get(std::uint16_t port, const std::string& path);

// The value of one sample line of a Prometheus text scrape, e.g.
// metric_value(text, "scgi_requests_total{code=\"200\",pool=\"app\"}"); -1 when absent.
double metric_value(const std::string& scrape, const std::string& series);

// An scgi-proxy file with one pool "app" for a test.
struct OnePool {
  Address listen;
  std::vector<Address> backends;
  std::string pool_keys{};         // more lines for [[pool]], e.g. "concurrency = 2"
  std::uint16_t metrics_port = 0;  // 0: metrics off
  std::string access_log{};        // "": off
  std::string proxy_keys{};        // more lines for [proxy]
};
std::string one_pool_config(const OnePool& spec);

// TOML list of quoted addresses: ["127.0.0.1:1", "127.0.0.1:2"].
std::string toml_addresses(const std::vector<Address>& addresses);

}  // namespace scgi::test
