// The balancer as a whole: the proxy threads (one single-threaded io_context
// each), the pools with their listeners and fixed or DNS-discovered backends,
// health probes of backends marked down, the access log and graceful stop. scgi-proxy runs one;
// scgi-manager runs one too and feeds its pools' backends itself.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "scgi/config.hpp"
#include "scgi/proxy/pool.hpp"
#include "scgi/runtime/endpoint.hpp"
#include "scgi/runtime/notifier.hpp"

namespace prometheus {
class Collectable;
}

namespace scgi::proxy {

// The proxy's inner parts (proxy/src): the server owns them, users never see them.
class AccessLog;
class DiscoveryStats;
class DnsDiscoverer;
class Listener;
class LiveExchanges;
class ParkedHeads;
struct HeadSoFar;
class ProxyMetrics;
class SpillSpace;

class ProxyServer {
 public:
  // `control` runs on the caller's thread: signals, probes, reloads.
  // `threads` = 0 means one per core. The count is fixed for the server's life.
  ProxyServer(asio::io_context& control, std::uint32_t threads);
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  // Makes the running state match `config` (already validated): the first call
  // builds everything; later calls are a reload that keeps what is unchanged,
  // never drops a request in flight, and opens new listeners before closing
  // old ones. On failure (a port in use, say) nothing is changed, and `errors`
  // says why. Call on the control thread.
  bool apply(const Config& config, std::vector<std::string>& errors);

  // Starts the proxy threads; listeners accept from then on.
  void start();
  // Stops accepting, lets exchanges in flight finish up to `timeout`, then
  // ends the rest and joins the threads. A coroutine for the control context.
  asio::awaitable<void> shut_down(std::chrono::milliseconds timeout);
  // Reopens the access log (SIGUSR1, after logrotate).
  void reopen_logs();

  // --- Upgrade (program_upgrade.hpp): what the next image continues with. ---
  // Before the first apply() of an image that an upgrade started: the
  // previous image's listening sockets are taken instead of bound anew, its
  // counters continue, its discovered backends (and their drains) are there
  // before the first request, and start() resumes its connections that were
  // still sending their request head. Throws nlohmann::json::exception on a state
  // this build cannot read (check_handover() says so beforehand).
  void adopt(const nlohmann::json& state);
  static std::optional<std::string> check_handover(const nlohmann::json& state);
  // Stops accepting (connections wait in the kernel's backlog: the sockets
  // stay open) and lets the exchanges in flight finish within `timeout`; then
  // ends the rest as a shutdown does. Those still reading their request head
  // are not waited for: their connections are set aside (parked_heads.hpp),
  // for the next image to go on with.
  asio::awaitable<void> pause(std::chrono::milliseconds timeout);
  // Accepts again, and the set-aside heads go on: the upgrade failed (not
  // once shut_down() began: then they are closed).
  void resume();
  // shut_down() began: an upgrade must not go on.
  bool stopping() const { return stopping_.load(); }
  // The state for the next image; `descriptors` gets the sockets it keeps.
  // After pause(), on the control thread.
  nlohmann::json handover_state(std::vector<int>& descriptors) const;

  // Called on the control thread for each pool apply() creates, before it
  // serves: the place for a pool's owner to subscribe to it.
  void on_pool_created(std::function<void(const std::shared_ptr<Pool>&)> callback) {
    pool_created_ = std::move(callback);
  }

  // What the owner of a pool's backends (scgi-manager's supervisor of its
  // workers) hears of the balancer. Called on the control thread.
  struct PoolListener {
    // A draining or removed backend's last request in flight ended.
    std::function<void(const std::shared_ptr<Backend>&)> idle;
    // A request on it passed request_timeout: which, and how long it had taken.
    std::function<void(const std::shared_ptr<Backend>&, const std::string& uri,
                       std::chrono::nanoseconds elapsed)>
        timed_out;
    // A request on it passed slow_request_threshold, and then how it ended (Pool::Events).
    std::function<void(const std::shared_ptr<Backend>&, const SlowRequest&)> slow;
    std::function<void(const std::shared_ptr<Backend>&, std::uint64_t id, int status,
                       std::chrono::nanoseconds running)>
        slow_ended;
  };
  // Listening ends when the Subscription is destroyed (on the control thread);
  // the server must outlive it.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(ProxyServer* server, std::uint64_t id) : server_(server), id_(id) {}
    Subscription(Subscription&& other) noexcept
        : server_(std::exchange(other.server_, nullptr)), id_(other.id_) {}
    Subscription& operator=(Subscription&& other) noexcept;
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription();

   private:
    ProxyServer* server_ = nullptr;
    std::uint64_t id_ = 0;
  };
  // Any number may listen to one pool (a supervisor stopping the workers of a
  // pool that a reload converted, and the one starting its new workers), each
  // for as long as it lives, even after the pool left the configuration.
  [[nodiscard]] Subscription subscribe(const std::shared_ptr<Pool>& pool, PoolListener listener);

  std::shared_ptr<Pool> find_pool(const std::string& name) const;
  std::vector<std::shared_ptr<Pool>> pools() const;
  // The balancer's metrics, for a /metrics endpoint.
  std::weak_ptr<prometheus::Collectable> metrics() const;
  std::size_t active_exchanges() const { return active_.load(std::memory_order_relaxed); }
  std::size_t thread_count() const { return contexts_.size(); }

 private:
  struct PoolEntry {
    std::shared_ptr<Pool> pool;
    std::unique_ptr<Listener> listener;
    // A discover pool's: the discoverer (control thread only) and its metrics,
    // which outlive discoverers replaced by a reload.
    std::shared_ptr<DnsDiscoverer> discoverer;
    std::shared_ptr<DiscoveryStats> discovery_stats;
  };

  void start_listener(const std::shared_ptr<Pool>& pool, Listener& listener);
  // The listener of a pool at `address`: the previous image's socket after
  // an upgrade, else a new one.
  std::unique_ptr<Listener> open_listener(const PoolConfig& pool, std::string& error);
  // A pool apply() creates continues where the previous image's left off;
  // a discover pool's discovery counters come back, to go with it.
  std::shared_ptr<DiscoveryStats> carry_over(Pool& pool, const PoolConfig& config);
  // Once its backends are there: those the previous image found down are
  // down here too, probed until they answer (not tried by requests first).
  void carry_health(Pool& pool);
  // A new connection, or (`resumed`) one whose head began before an upgrade.
  void accept(const std::shared_ptr<Pool>& pool, Socket socket,
              std::unique_ptr<HeadSoFar> resumed = nullptr);
  // The heads an upgrade handed over go on, each on a proxy thread in turn.
  void resume_inherited_heads();
  // Waits up to `timeout` for the exchanges in flight to end, then ends the rest.
  asio::awaitable<void> finish_exchanges(std::chrono::milliseconds timeout);
  bool sync_fixed_backends(Pool& pool, const PoolConfig& config, std::vector<std::string>& errors);
  // Starts, keeps or replaces the pool's discoverer, or stops it when the pool
  // no longer discovers; false (with `errors`) when the resolver cannot be set up.
  void follow_dns(const std::shared_ptr<Pool>& pool, const PoolConfig& config,
                  std::vector<std::string>& errors);
  // A pool's events, fixed at its creation: each hands the report over to the
  // control thread, where the discoverer and the subscribers hear of it.
  Pool::Events pool_events();
  void on_backend_idle(const std::shared_ptr<Pool>& pool, const std::shared_ptr<Backend>& backend);
  void on_backend_timed_out(const std::shared_ptr<Pool>& pool,
                            const std::shared_ptr<Backend>& backend, const std::string& uri,
                            std::chrono::nanoseconds elapsed);
  // Calls `tell` with each listener of `pool`; one may unsubscribe meanwhile.
  template <class F>
  void tell_listeners(const Pool* pool, F&& tell);
  std::vector<std::pair<std::string, std::shared_ptr<const DiscoveryStats>>> discovery_stats()
      const;

  asio::io_context& control_;
  // Before the contexts: the exchanges they may still hold at destruction use these.
  std::unique_ptr<SpillSpace> spill_space_;
  std::vector<std::unique_ptr<LiveExchanges>> live_;  // one per context, same index
  std::map<const asio::execution_context*, LiveExchanges*> live_by_context_;
  std::vector<std::unique_ptr<asio::io_context>> contexts_;
  // After the contexts: its sockets are closed before the contexts go.
  std::unique_ptr<ParkedHeads> parked_heads_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
  bool started_ = false;

  mutable std::mutex pools_mutex_;  // apply() writes, scrapes read
  std::map<std::string, PoolEntry> pools_;
  std::unique_ptr<AccessLog> access_log_;
  std::shared_ptr<ProxyMetrics> metrics_;
  std::atomic<std::size_t> active_{0};
  Notifier exchanges_done_;  // control thread: the last exchange ended while stopping
  std::atomic<bool> stopping_{false};
  std::atomic<bool> pausing_{false};  // an upgrade waits for the exchanges to end
  // An upgrade's, until the first apply() took them: listening sockets by
  // address, and each pool's counters and discovered backends.
  std::map<std::string, int> inherited_listeners_;
  nlohmann::json inherited_pools_ = nlohmann::json::object();
  // An upgrade's, until start() resumes them: connections still sending their head.
  nlohmann::json inherited_heads_ = nlohmann::json::array();
  std::function<void(const std::shared_ptr<Pool>&)> pool_created_;
  // Control thread only.
  struct Listening {
    const Pool* pool;  // kept alive by the subscriber, which holds the pool
    PoolListener listener;
  };
  std::map<std::uint64_t, Listening> listeners_;
  std::uint64_t next_subscription_ = 1;
};

}  // namespace scgi::proxy
