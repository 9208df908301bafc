#include "scgi/proxy/metrics_server.hpp"

#include <prometheus/exposer.h>

namespace scgi::proxy {

MetricsServer::MetricsServer(Address address, std::unique_ptr<prometheus::Exposer> exposer)
    : address_(std::move(address)), exposer_(std::move(exposer)) {}

MetricsServer::~MetricsServer() = default;

std::unique_ptr<MetricsServer> MetricsServer::start(const Address& address, std::string& error) {
  if (address.is_unix()) {
    error = "metrics.listen must be a TCP address, not " + address.to_string();
    return nullptr;
  }
  try {
    // One serving thread is plenty for a scraper or two.
    auto exposer = std::make_unique<prometheus::Exposer>(address.to_string(), 1);
    return std::unique_ptr<MetricsServer>(new MetricsServer(address, std::move(exposer)));
  } catch (const std::exception& e) {
    error = "cannot serve metrics on " + address.to_string() + ": " + e.what();
    return nullptr;
  }
}

void MetricsServer::add(const std::weak_ptr<prometheus::Collectable>& collectable) {
  exposer_->RegisterCollectable(collectable);
}

}  // namespace scgi::proxy
