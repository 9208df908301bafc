#include "scgi/proxy/proxy_server.hpp"

#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <unistd.h>

#include <algorithm>
#include <set>

#include "access_log.hpp"
#include "discovery/discovery_stats.hpp"
#include "discovery/dns_discoverer.hpp"
#include "exchange.hpp"
#include "health/recovery_probe.hpp"
#include "listener.hpp"
#include "parked_heads.hpp"
#include "proxy_metrics.hpp"
#include "response_spill.hpp"
#include "scgi/log.hpp"

namespace scgi::proxy {
namespace {

// After shutdown_timeout, how long the exchanges still running get to end.
constexpr std::chrono::seconds kShutdownGrace{2};

std::uint32_t thread_count_for(std::uint32_t configured) {
  if (configured != 0) return configured;
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

ProxyServer::ProxyServer(asio::io_context& control, std::uint32_t threads)
    : control_(control),
      spill_space_(std::make_unique<SpillSpace>()),
      access_log_(std::make_unique<AccessLog>()) {
  const std::uint32_t count = thread_count_for(threads);
  for (std::uint32_t i = 0; i < count; ++i) {
    contexts_.push_back(std::make_unique<asio::io_context>(1));
    work_.push_back(asio::make_work_guard(*contexts_.back()));
    live_.push_back(std::make_unique<LiveExchanges>());
    live_by_context_[contexts_.back().get()] = live_.back().get();
  }
  parked_heads_ = std::make_unique<ParkedHeads>();
  metrics_ = std::make_shared<ProxyMetrics>([this] { return pools(); },
                                            [this] { return discovery_stats(); });
}

ProxyServer::~ProxyServer() {
  for (auto& context : contexts_)
    context->stop();
  for (auto& thread : threads_)
    if (thread.joinable()) thread.join();
}

std::weak_ptr<prometheus::Collectable> ProxyServer::metrics() const {
  return metrics_;
}

std::shared_ptr<Pool> ProxyServer::find_pool(const std::string& name) const {
  std::lock_guard lock(pools_mutex_);
  const auto it = pools_.find(name);
  return it == pools_.end() ? nullptr : it->second.pool;
}

std::vector<std::shared_ptr<Pool>> ProxyServer::pools() const {
  std::lock_guard lock(pools_mutex_);
  std::vector<std::shared_ptr<Pool>> out;
  for (const auto& [name, entry] : pools_)
    out.push_back(entry.pool);
  return out;
}

bool ProxyServer::apply(const Config& config, std::vector<std::string>& errors) {
  // First everything that can fail, without touching the running state.
  std::map<std::string, std::unique_ptr<Listener>> new_listeners;
  // A kept front door's new listen_mode/listen_group: applied with the rest.
  std::vector<std::pair<Listener*, UnixSocketAccess>> access_changes;
  for (const PoolConfig& pool_config : config.pools) {
    if (!pool_config.listen) continue;
    const auto existing = pools_.find(pool_config.name);
    const bool unchanged = existing != pools_.end() && existing->second.listener &&
                           existing->second.listener->same_address(*pool_config.listen);
    const UnixSocketAccess access{pool_config.listen_mode, pool_config.listen_group};
    std::string error;
    if (unchanged) {
      if (!existing->second.listener->can_set_access(access, error))
        errors.push_back("pool " + pool_config.name + ": " + error);
      access_changes.emplace_back(existing->second.listener.get(), access);
      continue;
    }
    auto listener = open_listener(pool_config, error);
    if (!listener) {
      errors.push_back("pool " + pool_config.name + ": " + error);
      continue;
    }
    new_listeners[pool_config.name] = std::move(listener);
  }
  std::string log_error_text;
  auto access_log = access_log_->prepare(config.proxy.access_log, log_error_text);
  if (!access_log) errors.push_back(log_error_text);
  // The spill folder is opened and tried only when some response may spill.
  std::optional<SpillFolder> spill_folder;
  const bool spills =
      config.proxy.spill_limit > 0 &&
      std::any_of(config.pools.begin(), config.pools.end(),
                  [](const PoolConfig& pool) { return pool.response_spill_bytes > 0; });
  if (spills) {
    std::string spill_error;
    spill_folder = SpillFolder::open(config.proxy.spill_dir, spill_error);
    if (!spill_folder) errors.push_back(spill_error);
  }
  if (!errors.empty()) return false;

  // Then the changes, which cannot fail (but for a front door that another
  // process replaced meanwhile: reported, the rest applies).
  for (const auto& [listener, access] : access_changes) {
    std::string error;
    if (!listener->set_access(access, error)) log_error("{}", error);
  }
  access_log_->use(std::move(*access_log));
  spill_space_->use(std::move(spill_folder), config.proxy.spill_limit);
  std::set<std::string> wanted;
  for (const PoolConfig& pool_config : config.pools) {
    wanted.insert(pool_config.name);
    std::shared_ptr<Pool> pool = find_pool(pool_config.name);
    if (!pool) {
      pool = std::make_shared<Pool>(pool_config, contexts_.size() + 1, pool_events());
      auto discovery_stats = carry_over(*pool, pool_config);
      if (pool_created_) pool_created_(pool);  // before its listener can accept
      std::lock_guard lock(pools_mutex_);
      pools_[pool_config.name].pool = pool;
      if (discovery_stats) pools_[pool_config.name].discovery_stats = discovery_stats;
    } else {
      pool->update_settings(pool_config);
    }
    // Read without the lock: only this thread changes pools_.
    const auto before = pools_.find(pool_config.name);
    const bool was_discovering = before != pools_.end() && before->second.discoverer != nullptr;
    follow_dns(pool, pool_config, errors);
    if (pool_config.kind == PoolKind::backends) {
      sync_fixed_backends(*pool, pool_config, errors);
      // Discovery may have left some draining: listed now, they are the file's to route.
      if (was_discovering)
        for (const auto& backend : pool->backends())
          if (backend->membership() == Backend::Membership::draining)
            pool->set_membership(backend, Backend::Membership::ready);
    }
    carry_health(*pool);

    auto listener = new_listeners.find(pool_config.name);
    std::lock_guard lock(pools_mutex_);
    PoolEntry& entry = pools_[pool_config.name];
    if (listener != new_listeners.end()) {
      // The new door opens before the old one closes: no connection is refused.
      if (started_) start_listener(pool, *listener->second);
      if (entry.listener) entry.listener->close();
      entry.listener = std::move(listener->second);
    } else if (!pool_config.listen && entry.listener) {
      entry.listener->close();
      entry.listener.reset();
    }
  }

  // An upgrade's sockets that the configuration no longer names.
  for (const auto& [address, fd] : std::exchange(inherited_listeners_, {})) {
    log_info("{}: no pool listens there any more; closed", address);
    ::close(fd);
  }
  inherited_pools_ = nlohmann::json::object();

  // Pools gone from the file: stop accepting; requests in flight finish, as
  // each exchange owns its pool.
  std::lock_guard lock(pools_mutex_);
  for (auto it = pools_.begin(); it != pools_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    log_info("pool {}: removed by the new configuration; in-flight requests finish", it->first);
    if (it->second.discoverer) it->second.discoverer->stop();
    if (it->second.listener) it->second.listener->close();
    for (const auto& backend : it->second.pool->backends())
      it->second.pool->remove_backend(backend);
    it = pools_.erase(it);
  }
  return true;
}

bool ProxyServer::sync_fixed_backends(Pool& pool, const PoolConfig& config,
                                      std::vector<std::string>& errors) {
  const std::vector<std::shared_ptr<Backend>> before = pool.backends();
  std::set<std::string> listed;
  for (const Address& address : config.backends)
    listed.insert(address.to_string());
  std::set<std::string> present;
  for (const auto& backend : before)
    present.insert(backend->name());
  // New backends first, the unlisted ones (a file's old ones, or the workers
  // of a pool that ran them until this reload) after: the pool is never left
  // without a backend to route to.
  bool ok = true;
  for (const Address& address : config.backends) {
    if (present.count(address.to_string())) continue;  // kept as it is
    auto endpoints = resolve_endpoints(address);
    if (!endpoints) {
      // Not fatal: the name may resolve at the next reload. Say so loudly.
      log_error("pool {}: backend {} left out: {}", pool.name(), address.to_string(),
                endpoints.error());
      errors.push_back(endpoints.error());
      ok = false;
      continue;
    }
    present.insert(address.to_string());
    pool.add_backend(address.to_string(), std::move(endpoints).value());
  }
  for (const auto& backend : before) {
    if (listed.count(backend->name())) continue;
    log_info("pool {}: backend {} removed; its requests in flight finish", pool.name(),
             backend->name());
    pool.remove_backend(backend);
  }
  return ok;
}

void ProxyServer::follow_dns(const std::shared_ptr<Pool>& pool, const PoolConfig& config,
                             std::vector<std::string>& errors) {
  std::shared_ptr<DnsDiscoverer> old;
  std::shared_ptr<DiscoveryStats> stats;
  {
    std::lock_guard lock(pools_mutex_);
    PoolEntry& entry = pools_[config.name];
    if (entry.discoverer && entry.discoverer->same_source(config)) return;
    old = std::move(entry.discoverer);
    if (config.kind == PoolKind::discover && !entry.discovery_stats)
      entry.discovery_stats = std::make_shared<DiscoveryStats>();
    if (config.kind != PoolKind::discover) entry.discovery_stats.reset();
    stats = entry.discovery_stats;
  }
  // The new discoverer adopts the pool's backends as they are: those its
  // first answer does not list are drained then, none is cut.
  if (old) {
    old->stop();
    if (config.kind == PoolKind::discover)
      log_info("pool {}: discovery settings changed; restarting it", config.name);
    else
      log_info("pool {}: no longer follows DNS", config.name);
  }
  if (config.kind != PoolKind::discover) return;
  std::shared_ptr<DnsDiscoverer> discoverer;
  try {
    discoverer = std::make_shared<DnsDiscoverer>(control_, pool, config, stats);
  } catch (const std::exception& e) {
    log_error("pool {}: {}", config.name, e.what());
    errors.push_back("pool " + config.name + ": " + e.what());
    return;
  }
  {
    std::lock_guard lock(pools_mutex_);
    pools_[config.name].discoverer = discoverer;
  }
  discoverer->start();
}

void ProxyServer::on_backend_idle(const std::shared_ptr<Pool>& pool,
                                  const std::shared_ptr<Backend>& backend) {
  tell_listeners(pool.get(), [&](const PoolListener& listener) {
    if (listener.idle) listener.idle(backend);
  });
  std::shared_ptr<DnsDiscoverer> discoverer;
  {
    std::lock_guard lock(pools_mutex_);
    const auto it = pools_.find(pool->name());
    if (it == pools_.end() || it->second.pool != pool) return;
    discoverer = it->second.discoverer;
  }
  if (discoverer) discoverer->on_backend_idle(backend);
}

std::vector<std::pair<std::string, std::shared_ptr<const DiscoveryStats>>>
ProxyServer::discovery_stats() const {
  std::lock_guard lock(pools_mutex_);
  std::vector<std::pair<std::string, std::shared_ptr<const DiscoveryStats>>> out;
  for (const auto& [name, entry] : pools_)
    if (entry.discovery_stats) out.emplace_back(name, entry.discovery_stats);
  return out;
}

void ProxyServer::start_listener(const std::shared_ptr<Pool>& pool, Listener& listener) {
  std::vector<asio::io_context*> contexts;
  for (auto& context : contexts_)
    contexts.push_back(context.get());
  listener.start(contexts, [this, pool](Socket socket) { accept(pool, std::move(socket)); });
  log_info("pool {}: listening on {}", pool->name(), listener.address().to_string());
}

void ProxyServer::start() {
  started_ = true;
  {
    std::lock_guard lock(pools_mutex_);
    for (auto& [name, entry] : pools_)
      if (entry.listener) start_listener(entry.pool, *entry.listener);
  }
  resume_inherited_heads();
  for (std::size_t i = 0; i < contexts_.size(); ++i) {
    threads_.emplace_back([this, i] {
      set_current_shard(i + 1);
      contexts_[i]->run();
    });
  }
}

void ProxyServer::accept(const std::shared_ptr<Pool>& pool, Socket socket,
                         std::unique_ptr<HeadSoFar> resumed) {
  if (stopping_.load(std::memory_order_relaxed)) return;  // closing the socket refuses it
  active_.fetch_add(1);
  const auto executor = socket.get_executor();
  LiveExchanges& live = *live_by_context_.at(&executor.context());
  asio::co_spawn(
      executor,
      run_exchange(std::move(socket), pool, *access_log_, *spill_space_, live, std::move(resumed)),
      [this](std::exception_ptr e) {
        // The last one while stopping wakes shut_down(); sequentially
        // consistent with its store of stopping_, so one of the two
        // sees the other.
        if (active_.fetch_sub(1) == 1 && (stopping_.load() || pausing_.load()))
          asio::post(control_, [this] { exchanges_done_.notify(); });
        log_failure("an exchange")(e);
      });
}

Pool::Events ProxyServer::pool_events() {
  Pool::Events events;
  // Any proxy thread may report; the work happens on the control thread. The
  // pool may be gone by then: the handlers hold it weakly.
  events.down = [this](Pool& pool, const std::shared_ptr<Backend>& backend) {
    asio::co_spawn(control_, probe_until_up(pool.weak_from_this(), backend, stopping_),
                   log_failure("a health probe"));
  };
  events.idle = [this](Pool& pool, const std::shared_ptr<Backend>& backend) {
    asio::post(control_, [this, weak = pool.weak_from_this(), backend] {
      if (auto pool = weak.lock()) on_backend_idle(pool, backend);
    });
  };
  events.timed_out = [this](Pool& pool, const std::shared_ptr<Backend>& backend,
                            std::string_view uri, std::chrono::nanoseconds elapsed) {
    asio::post(control_,
               [this, weak = pool.weak_from_this(), backend, uri = std::string(uri), elapsed] {
                 if (auto pool = weak.lock()) on_backend_timed_out(pool, backend, uri, elapsed);
               });
  };
  events.slow = [this](Pool& pool, const std::shared_ptr<Backend>& backend,
                       const SlowRequest& request) {
    asio::post(control_, [this, weak = pool.weak_from_this(), backend, request] {
      auto pool = weak.lock();
      if (!pool) return;
      tell_listeners(pool.get(), [&](const PoolListener& listener) {
        if (listener.slow) listener.slow(backend, request);
      });
    });
  };
  events.slow_ended = [this](Pool& pool, const std::shared_ptr<Backend>& backend, std::uint64_t id,
                             int status, std::chrono::nanoseconds running) {
    asio::post(control_, [this, weak = pool.weak_from_this(), backend, id, status, running] {
      auto pool = weak.lock();
      if (!pool) return;
      tell_listeners(pool.get(), [&](const PoolListener& listener) {
        if (listener.slow_ended) listener.slow_ended(backend, id, status, running);
      });
    });
  };
  return events;
}

ProxyServer::Subscription ProxyServer::subscribe(const std::shared_ptr<Pool>& pool,
                                                 PoolListener listener) {
  const std::uint64_t id = next_subscription_++;
  listeners_.emplace(id, Listening{pool.get(), std::move(listener)});
  return Subscription(this, id);
}

ProxyServer::Subscription& ProxyServer::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    if (server_) server_->listeners_.erase(id_);
    server_ = std::exchange(other.server_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

ProxyServer::Subscription::~Subscription() {
  if (server_) server_->listeners_.erase(id_);
}

template <class F>
void ProxyServer::tell_listeners(const Pool* pool, F&& tell) {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, listening] : listeners_)
    if (listening.pool == pool) ids.push_back(id);
  for (const std::uint64_t id : ids)
    if (const auto it = listeners_.find(id); it != listeners_.end()) tell(it->second.listener);
}

void ProxyServer::on_backend_timed_out(const std::shared_ptr<Pool>& pool,
                                       const std::shared_ptr<Backend>& backend,
                                       const std::string& uri, std::chrono::nanoseconds elapsed) {
  tell_listeners(pool.get(), [&](const PoolListener& listener) {
    if (listener.timed_out) listener.timed_out(backend, uri, elapsed);
  });
}

void ProxyServer::reopen_logs() {
  std::string error;
  if (!access_log_->reopen(error)) log_error("{}", error);
}

asio::awaitable<void> ProxyServer::shut_down(std::chrono::milliseconds timeout) {
  stopping_.store(true);
  {
    std::lock_guard lock(pools_mutex_);
    for (auto& [name, entry] : pools_) {
      if (entry.listener) entry.listener->close();
      if (entry.discoverer) entry.discoverer->stop();  // backends stay for requests in flight
      entry.discoverer.reset();
    }
  }
  co_await finish_exchanges(timeout);
  for (auto& guard : work_)
    guard.reset();
  for (auto& context : contexts_)
    context->stop();
  for (auto& thread : threads_)
    if (thread.joinable()) thread.join();
  threads_.clear();
}

asio::awaitable<void> ProxyServer::finish_exchanges(std::chrono::milliseconds timeout) {
  const auto none_left = [this] { return active_exchanges() == 0; };
  if (!co_await exchanges_done_.wait_until(none_left, Notifier::Clock::now() + timeout)) {
    log_warn("shutdown_timeout ({}) passed with {} requests in flight; ending them",
             format_duration(timeout), active_exchanges());
    // Each ends on its own thread, answered where nothing was sent yet and
    // counted as `shutdown`; what still runs after a short grace is dropped.
    for (std::size_t i = 0; i < contexts_.size(); ++i)
      asio::post(*contexts_[i], [live = live_[i].get()] { live->end_all(); });
    co_await exchanges_done_.wait_until(none_left, Notifier::Clock::now() + kShutdownGrace);
  }
}

}  // namespace scgi::proxy
