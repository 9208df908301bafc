// DNS discovery for one pool (discover = "dns:NAME:PORT"): resolves NAME at
// start and every discover_interval and makes the pool's backends follow the
// answer. A new address joins after a connect probe, as "IP:PORT"; a vanished
// one is drained and removed once nothing is in flight on it, never cut; one
// that comes back while draining is undrained. Failed resolutions keep the
// backends as they are; empty answers follow EmptyAnswerHold
// (discovery_plan.hpp). Lives on the control thread; the rules are in
// docs/discovery.md.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <set>
#include <string>

#include "discovery/discovery_plan.hpp"
#include "discovery/discovery_stats.hpp"
#include "discovery/dns_resolver.hpp"
#include "scgi/config.hpp"
#include "scgi/proxy/pool.hpp"

namespace scgi::proxy {

class DnsDiscoverer : public std::enable_shared_from_this<DnsDiscoverer> {
 public:
  // `config` must be a discover pool's. Throws std::runtime_error when the
  // resolver cannot be set up.
  DnsDiscoverer(asio::io_context& control, std::shared_ptr<Pool> pool, const PoolConfig& config,
                std::shared_ptr<DiscoveryStats> stats);
  DnsDiscoverer(const DnsDiscoverer&) = delete;
  DnsDiscoverer& operator=(const DnsDiscoverer&) = delete;

  // Starts the resolve loop, which keeps this object alive until it ends after stop().
  void start();
  // Ends the loop soon (a resolution in progress at once); backends stay as they are.
  void stop();
  // Whether `config` asks for the same thing (name, port, interval, resolver):
  // if not, a reload replaces this discoverer.
  bool same_source(const PoolConfig& config) const;
  // The pool's idle event for one of its backends, brought to the control thread.
  void on_backend_idle(const std::shared_ptr<Backend>& backend);

 private:
  asio::awaitable<void> run(std::shared_ptr<DnsDiscoverer> self);
  // Makes the pool follow `listed` (backend names).
  asio::awaitable<void> follow(const std::set<std::string>& listed);
  void note(const DnsAnswer& answer);  // logs a change of state once
  void update_backend_count();

  asio::io_context& control_;
  const std::shared_ptr<Pool> pool_;
  const DnsDiscovery source_;
  const Milliseconds interval_;
  const std::optional<Address> resolver_address_;
  const std::shared_ptr<DiscoveryStats> stats_;
  DnsResolver resolver_;
  asio::steady_timer interval_timer_;
  bool stopped_ = false;
  EmptyAnswerHold empty_hold_;
  // What was last logged, so that a state repeated every interval is logged once.
  std::optional<ResolutionResult> logged_result_;
  std::string logged_error_;
  std::set<std::string> probe_failures_logged_;
};

}  // namespace scgi::proxy
