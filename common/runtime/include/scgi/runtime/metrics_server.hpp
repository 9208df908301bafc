// Serves /metrics in Prometheus text format (prometheus-cpp's exposer, on its
// own threads) for every collectable added: the proxy's and the manager's.
#pragma once

#include <prometheus/collectable.h>

#include <memory>
#include <string>

#include "scgi/address.hpp"

namespace prometheus {
class Exposer;
}

namespace scgi {

class MetricsServer {
 public:
  // nullptr and `error` set when the address cannot be served. Serves
  // scgi_build_info{program, version} 1 from the start: which build of which
  // daemon answers (a dashboard shows an upgrade as the version changing).
  static std::unique_ptr<MetricsServer> start(const Address& address, const std::string& program,
                                              std::string& error);
  ~MetricsServer();

  void add(const std::weak_ptr<prometheus::Collectable>& collectable);
  // The port actually bound (useful when the configuration said port 0).
  const Address& address() const { return address_; }

 private:
  MetricsServer(Address address, std::unique_ptr<prometheus::Exposer> exposer);
  Address address_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Collectable> build_info_;
};

}  // namespace scgi
