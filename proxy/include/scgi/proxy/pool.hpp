// A pool: its settings, its backends, and the FIFO queue of requests waiting
// for a slot. Shared by every proxy thread. The exchange asks it for a slot
// (acquire) and gives the slot back through the Lease; owners of backends (the
// proxy's configuration, or the manager) change membership through the
// membership interface below.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scgi/config.hpp"
#include "scgi/proxy/backend.hpp"
#include "scgi/proxy/backend_series.hpp"
#include "scgi/proxy/pool_stats.hpp"

namespace scgi::proxy {

class Pool;

// One slot on one backend, held for the life of a request; given back on
// destruction. Whoever holds a Lease keeps its pool alive for longer (the
// exchange owns a shared_ptr to the pool), so the pointer here is plain.
class Lease {
 public:
  Lease() = default;
  Lease(Pool* pool, std::shared_ptr<Backend> backend) : pool_(pool), backend_(std::move(backend)) {}
  Lease(Lease&& other) noexcept
      : pool_(std::exchange(other.pool_, nullptr)), backend_(std::move(other.backend_)) {}
  Lease& operator=(Lease&& other) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() { reset(); }

  explicit operator bool() const { return backend_ != nullptr; }
  Backend& backend() const { return *backend_; }
  const std::shared_ptr<Backend>& backend_ptr() const { return backend_; }
  void reset();

 private:
  Pool* pool_ = nullptr;
  std::shared_ptr<Backend> backend_;
};

enum class AcquireOutcome {
  granted,
  queue_full,     // the queue already holds queue_size requests
  queue_timeout,  // waited queue_timeout without a free slot
  client_closed,  // the client went away while waiting
  no_backend,     // nothing can ever take it: every backend was tried, or all are down
};

struct Acquisition {
  AcquireOutcome outcome = AcquireOutcome::no_backend;
  Lease lease;
  std::chrono::nanoseconds waited{0};  // time spent in the queue
  bool queued = false;
};

// A request that has run past its pool's slow_request_threshold on a backend
// (scgi-manager records it in its slow log, with a snapshot of the worker).
struct SlowRequest {
  std::uint64_t id = 0;  // unique in this process; slow_ended names it again
  std::string method;
  std::string uri;
  std::string trace_id;  // "" when the request has none
  std::chrono::system_clock::time_point accepted;
  std::chrono::nanoseconds queue_wait{0};
  std::chrono::nanoseconds running{0};  // since it was sent to the backend
};

// Slow request ids, unique in the process (and, across an upgrade in place,
// carried on): the next one, the next without taking it, and a start from
// the previous image's next.
std::uint64_t next_slow_request_id();
std::uint64_t peek_slow_request_id();
void continue_slow_request_ids(std::uint64_t next);

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  // What the pool's owner wants to hear of. Given to the constructor, before
  // any other thread can see the pool, and never changed: proxy threads read
  // them without a lock. Called on whichever proxy thread saw the event (with
  // the pool, which is alive for the call), so each must be thread-safe.
  struct Events {
    // A draining or removed backend's last request in flight ended.
    std::function<void(Pool&, const std::shared_ptr<Backend>&)> idle;
    // Connect failures marked it down: start probing it.
    std::function<void(Pool&, const std::shared_ptr<Backend>&)> down;
    // A request on it passed request_timeout (the worker may be stuck): which
    // request, and how long it had taken since it arrived.
    std::function<void(Pool&, const std::shared_ptr<Backend>&, std::string_view uri,
                       std::chrono::nanoseconds elapsed)>
        timed_out;
    // A request on it passed slow_request_threshold; later, how it ended (its
    // status, and how long it ran on the backend).
    std::function<void(Pool&, const std::shared_ptr<Backend>&, const SlowRequest&)> slow;
    std::function<void(Pool&, const std::shared_ptr<Backend>&, std::uint64_t id, int status,
                       std::chrono::nanoseconds running)>
        slow_ended;
  };

  // `shard_count`: proxy threads + 1 (see pool_stats.hpp).
  Pool(PoolConfig settings, std::size_t shard_count, Events events = {});
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  const std::string& name() const { return name_; }

  // The settings in force; an exchange keeps the snapshot it started with, so
  // a reload never changes a request in flight.
  // From the calling thread's cached state: no lock on a proxy thread.
  std::shared_ptr<const PoolConfig> settings();
  void update_settings(PoolConfig settings);

  // --- Membership interface: the only way backends come and go. ---
  // Adds a backend (ready unless said otherwise) and returns it; `label`
  // names it in metrics (empty: its name; see backend_series.hpp).
  std::shared_ptr<Backend> add_backend(std::string name, std::vector<Endpoint> endpoints,
                                       Backend::Membership membership = Backend::Membership::ready,
                                       std::string label = {});
  // Ready or draining: a draining backend gets no new request, those in flight finish.
  void set_membership(const std::shared_ptr<Backend>& backend, Backend::Membership membership);
  // Takes it out of the pool; requests in flight on it finish (their Lease keeps it alive).
  void remove_backend(const std::shared_ptr<Backend>& backend);
  // Health or limits changed outside the pool: waiting requests may now fit.
  void backend_changed();
  std::vector<std::shared_ptr<Backend>> backends() const;
  // Per-backend series for /metrics, by label.
  std::vector<BackendSeries> backend_series() const { return series_.series(backends()); }
  BackendSeriesBook& series_book() { return series_; }
  const Events& events() const { return events_; }

  // --- Data path. ---
  // A slot on the least busy routable backend not in `excluded`, if one is
  // free and nobody waits: the common case, without a coroutine.
  Lease try_acquire(std::span<Backend* const> excluded);
  // A slot on the least busy routable backend that is not in `excluded`, waiting
  // in the FIFO queue when every such backend is full. While waiting it watches
  // `client` for a close; body bytes that arrive meanwhile are appended to
  // `early_body` up to its capacity and `body_remaining` (which is lowered).
  asio::awaitable<Acquisition> acquire(Socket& client, std::span<Backend* const> excluded,
                                       std::vector<char>& early_body,
                                       std::uint64_t& body_remaining);
  // Gives a slot back and hands it to the head of the queue (called by Lease).
  void release(const std::shared_ptr<Backend>& backend);

  PoolStats& stats() { return stats_; }
  std::size_t queue_length() const { return queued_.load(std::memory_order_relaxed); }
  std::chrono::nanoseconds oldest_wait() const;

 private:
  struct Waiter;
  // What changes only on reload or membership change, published as a whole.
  struct State {
    std::shared_ptr<const PoolConfig> settings;
    std::vector<std::shared_ptr<Backend>> backends;
  };
  struct alignas(64) ThreadCache {
    std::uint64_t generation = ~std::uint64_t{0};
    std::shared_ptr<const State> state;
    std::size_t rotation = 0;
  };

  // Calls f(state) with the calling thread's view of the state: a proxy
  // thread reads its cached copy and takes no lock unless it changed.
  template <class F>
  auto with_state(F&& f);
  // Where the next pick starts looking among equals (per thread).
  std::size_t next_rotation();
  std::shared_ptr<const State> load_state() const;
  void publish(State state);  // with state_mutex_ held
  std::shared_ptr<Backend> try_pick(std::span<Backend* const> excluded);
  void serve_queue();
  void serve_queue_locked();
  // No backend can ever take the request: all tried, or all down.
  bool hopeless(std::span<Backend* const> excluded);

  const std::string name_;
  PoolStats stats_;
  BackendSeriesBook series_;

  mutable std::mutex state_mutex_;  // held to publish a new state, never per request
  std::shared_ptr<const State> state_;
  std::atomic<std::uint64_t> generation_{0};
  std::unique_ptr<ThreadCache[]> caches_;  // one per shard; shard 0 is shared and not cached
  std::size_t cache_count_;
  std::atomic<std::size_t> shared_rotation_{0};
  const Events events_;

  mutable std::mutex queue_mutex_;  // taken only when requests wait (see pool.cpp)
  std::list<std::shared_ptr<Waiter>> waiters_;
  std::atomic<std::size_t> queued_{0};
};

}  // namespace scgi::proxy
