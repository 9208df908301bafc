#include "discovery/dns_discoverer.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <map>

#include "scgi/log.hpp"
#include "scgi/runtime/connect_probe.hpp"

namespace scgi::proxy {
namespace {

using asio::experimental::as_tuple;

// One try of a resolution waits about an interval, within sane bounds: long
// enough for a distant server, short enough that a dead one is noticed soon.
std::chrono::milliseconds try_timeout_for(Milliseconds interval) {
  return std::clamp<std::chrono::milliseconds>(interval, std::chrono::milliseconds(250),
                                               std::chrono::milliseconds(2000));
}

std::string backend_name(const asio::ip::address& ip, std::uint16_t port) {
  return Address{Address::Kind::tcp, ip.to_string(), port, {}}.to_string();
}

}  // namespace

DnsDiscoverer::DnsDiscoverer(asio::io_context& control, std::shared_ptr<Pool> pool,
                             const PoolConfig& config, std::shared_ptr<DiscoveryStats> stats)
    : control_(control),
      pool_(std::move(pool)),
      source_(*config.discover),
      interval_(config.discover_interval),
      resolver_address_(config.resolver),
      stats_(std::move(stats)),
      resolver_(control, config.resolver, try_timeout_for(config.discover_interval)),
      interval_timer_(control) {}

void DnsDiscoverer::start() {
  log_info("pool {}: following DNS name {} (port {}) every {}, asking {}", pool_->name(),
           source_.name, source_.port, format_duration(interval_),
           resolver_address_ ? resolver_address_->to_string() : "the system's resolver");
  // The loop holds the only lasting reference: stop() ends it, and the object with it.
  asio::co_spawn(control_, run(shared_from_this()),
                 log_failure("DNS discovery of pool " + pool_->name()));
}

void DnsDiscoverer::stop() {
  stopped_ = true;
  resolver_.cancel();
  interval_timer_.cancel();
}

bool DnsDiscoverer::same_source(const PoolConfig& config) const {
  return config.kind == PoolKind::discover && config.discover &&
         config.discover->name == source_.name && config.discover->port == source_.port &&
         config.discover_interval == interval_ && config.resolver == resolver_address_;
}

asio::awaitable<void> DnsDiscoverer::run(std::shared_ptr<DnsDiscoverer> /*self*/) {
  while (!stopped_) {
    const DnsAnswer answer = co_await resolver_.resolve(source_.name);
    if (stopped_) break;
    stats_->count(answer.result);
    note(answer);
    if (answer.result == ResolutionResult::ok) {
      empty_hold_.saw_addresses();
      std::set<std::string> listed;
      for (const auto& ip : answer.addresses)
        listed.insert(backend_name(ip, source_.port));
      co_await follow(listed);
    } else if (answer.result == ResolutionResult::empty && empty_hold_.believe_empty()) {
      co_await follow({});
    }
    if (stopped_) break;
    interval_timer_.expires_after(interval_);
    co_await interval_timer_.async_wait(as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<void> DnsDiscoverer::follow(const std::set<std::string>& listed) {
  std::map<std::string, Backend::Membership> current;
  std::map<std::string, std::shared_ptr<Backend>> by_name;
  for (const auto& backend : pool_->backends()) {
    current[backend->name()] = backend->membership();
    by_name[backend->name()] = backend;
  }
  const MembershipPlan plan = plan_membership(current, listed);

  for (const std::string& name : plan.undrain) {
    log_info("pool {}: {} is back in DNS; it takes requests again", pool_->name(), name);
    pool_->set_membership(by_name[name], Backend::Membership::ready);
  }
  for (const std::string& name : plan.drain) {
    log_info("pool {}: {} left DNS; draining it (requests in flight finish)", pool_->name(), name);
    // Reports idle, now or when its last request ends: on_backend_idle removes it.
    pool_->set_membership(by_name[name], Backend::Membership::draining);
  }
  for (const auto& name : std::set<std::string>(probe_failures_logged_))
    if (!listed.count(name)) probe_failures_logged_.erase(name);

  const auto connect_timeout = pool_->settings()->connect_timeout;
  for (const std::string& name : plan.add) {
    const Address address = parse_address(name).value();
    const Endpoint endpoint(
        asio::ip::tcp::endpoint(asio::ip::make_address(address.host), address.port));
    const bool accepts = co_await connect_probe(endpoint, connect_timeout);
    if (stopped_) co_return;  // a reload or a stop came meanwhile: the next owner decides
    if (!accepts) {
      // Tried again at the next resolution; said once until it works or leaves DNS.
      if (probe_failures_logged_.insert(name).second)
        log_warn(
            "pool {}: {} is in DNS but does not accept connections (connect_timeout {}); "
            "not added yet",
            pool_->name(), name, format_duration(connect_timeout));
      continue;
    }
    probe_failures_logged_.erase(name);
    log_info("pool {}: {} appeared in DNS; added", pool_->name(), name);
    pool_->add_backend(name, {endpoint});
  }
  update_backend_count();
}

void DnsDiscoverer::on_backend_idle(const std::shared_ptr<Backend>& backend) {
  // Late or stale reports are ignored: it got requests again, or was undrained.
  if (backend->in_flight() != 0 || backend->membership() != Backend::Membership::draining) return;
  log_info("pool {}: {} drained; removed", pool_->name(), backend->name());
  pool_->remove_backend(backend);
  update_backend_count();
}

void DnsDiscoverer::update_backend_count() {
  const auto backends = pool_->backends();
  stats_->backends.store(
      static_cast<std::uint32_t>(std::count_if(
          backends.begin(), backends.end(),
          [](const auto& b) { return b->membership() == Backend::Membership::ready; })),
      std::memory_order_relaxed);
}

void DnsDiscoverer::note(const DnsAnswer& answer) {
  const bool changed = logged_result_ != answer.result ||
                       (answer.result == ResolutionResult::error && logged_error_ != answer.error);
  if (!changed) return;
  const bool recovered = logged_result_ && *logged_result_ != ResolutionResult::ok;
  logged_result_ = answer.result;
  logged_error_ = answer.error;
  switch (answer.result) {
    case ResolutionResult::ok:
      log_info("pool {}: {} resolves{} to {} address(es)", pool_->name(), source_.name,
               recovered ? " again" : "", answer.addresses.size());
      break;
    case ResolutionResult::empty:
      log_warn("pool {}: DNS has no address for {} (NXDOMAIN or no A/AAAA record); {}",
               pool_->name(), source_.name,
               pool_->backends().empty()
                   ? "the pool has no backend: its requests wait, then get 503, until it has"
                   : fmt::format("its backends are drained if {} answers in a row say so",
                                 EmptyAnswerHold::kAnswersToBelieve));
      break;
    case ResolutionResult::error:
      log_error("pool {}: cannot resolve {}: {}; keeping the {} backend(s) it has", pool_->name(),
                source_.name, answer.error, pool_->backends().size());
      break;
  }
}

}  // namespace scgi::proxy
