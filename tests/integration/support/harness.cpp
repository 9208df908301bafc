#include "harness.hpp"

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <unistd.h>

namespace scgi::test {

TempDir::TempDir() {
  std::random_device random;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = std::filesystem::temp_directory_path() /
                     ("scgi-test-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temp dir");
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void TempDir::write(const std::string& name, const std::string& content) const {
  std::ofstream out(file(name), std::ios::binary);
  out << content;
}

std::string built_binary(const std::string& name) {
  return std::string(SCGI_BIN_DIR) + "/" + name;
}

SampleWorker::SampleWorker(const TempDir& dir, const std::string& name)
    : address_(loopback(free_port())) {
  process_ = Process::start(
      {built_binary("scgi-sample-worker"), "--port", std::to_string(address_.port), "--name", name},
      dir.file(name + ".log"));
  if (!wait_until_accepting(address_))
    throw std::runtime_error("sample worker " + name + " did not start: " + process_.log());
}

ProxyProcess::ProxyProcess(const TempDir& dir, const std::string& config, const Address& listen,
                           const std::string& name)
    : config_path_(dir.file(name + ".toml")) {
  dir.write(name + ".toml", config);
  process_ = Process::start({built_binary("scgi-proxy"), "--config", config_path_},
                            dir.file(name + ".log"));
  if (!wait_until_accepting(listen))
    throw std::runtime_error("scgi-proxy did not start: " + process_.log());
}

std::string http_get(std::uint16_t port, const std::string& path) {
  const int fd = connect_to(loopback(port));
  if (fd < 0) return {};
  Response response = send_request_on(
      fd, "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 10s);
  ::close(fd);
  return response.bytes;
}

double metric_value(const std::string& scrape, const std::string& series) {
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, series.size(), series) == 0 && line.size() > series.size() &&
        line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

std::string one_pool_config(const OnePool& spec) {
  std::string text = "[proxy]\naccess_log = \"" + spec.access_log + "\"\n" + spec.proxy_keys +
                     "\n[metrics]\nlisten = \"";
  if (spec.metrics_port != 0) text += "127.0.0.1:" + std::to_string(spec.metrics_port);
  text += "\"\n[[pool]]\nname = \"app\"\nlisten = \"" + spec.listen.to_string() +
          "\"\nbackends = " + toml_addresses(spec.backends) + "\n" + spec.pool_keys + "\n";
  return text;
}

std::string toml_addresses(const std::vector<Address>& addresses) {
  std::string out = "[";
  for (std::size_t i = 0; i < addresses.size(); ++i)
    out += (i ? ", \"" : "\"") + addresses[i].to_string() + "\"";
  return out + "]";
}

}  // namespace scgi::test
