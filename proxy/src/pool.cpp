#include "scgi/proxy/pool.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>

#include "balancer.hpp"

// Why the pool is race-free and cheap (read this before changing it):
//
// * Settings and the backend list form one immutable State, replaced whole
//   under state_mutex_ (reload, membership change) with generation_ bumped.
//   A proxy thread keeps its own copy in its ThreadCache and re-reads it only
//   when the generation moved, so the hot path takes no lock for it.
// * A backend's slots are its in_flight counter: try_reserve() is a CAS below
//   the concurrency, release() a decrement. The choice itself is the pure
//   choose_least_busy() over a snapshot of the counters; if a racing thread
//   took the slot first, the CAS fails and we choose again.
// * The queue is a list under queue_mutex_, touched only when requests wait.
//   A releaser decrements in_flight and then reads queued_; an enqueuer
//   increments queued_ and then, under the lock, tries to take a slot. Both
//   are sequentially consistent, so at least one of them sees the other: a
//   slot that frees while a request enters the queue is never lost.
// * A slot is handed to a waiter under queue_mutex_ (Waiter::granted); the
//   waiter's timer is then cancelled on the waiter's own thread through post(),
//   because an Asio timer may only be touched from the thread that runs it.
//   Each waiter runs on a single-threaded io_context, so that cancel cannot run
//   before the waiter has started its wait.

namespace scgi::proxy {

namespace {
std::atomic<std::uint64_t> g_next_slow_request_id{1};
}  // namespace

std::uint64_t next_slow_request_id() {
  return g_next_slow_request_id.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t peek_slow_request_id() {
  return g_next_slow_request_id.load(std::memory_order_relaxed);
}

void continue_slow_request_ids(std::uint64_t next) {
  std::uint64_t current = g_next_slow_request_id.load(std::memory_order_relaxed);
  while (next > current && !g_next_slow_request_id.compare_exchange_weak(current, next)) {
  }
}

using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;

struct Pool::Waiter {
  Waiter(const asio::any_io_executor& executor, std::span<Backend* const> excluded_backends)
      : timer(executor), excluded(excluded_backends) {}

  asio::steady_timer timer;
  std::span<Backend* const> excluded;  // lives in the exchange, which outlives its wait
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
  // Guarded by queue_mutex_:
  std::shared_ptr<Backend> granted;
  std::list<std::shared_ptr<Waiter>>::iterator position;
  bool in_queue = false;
};

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    reset();
    pool_ = std::exchange(other.pool_, nullptr);
    backend_ = std::move(other.backend_);
  }
  return *this;
}

void Lease::reset() {
  if (backend_ && pool_) pool_->release(backend_);
  backend_.reset();
  pool_ = nullptr;
}

Pool::Pool(PoolConfig settings, std::size_t shard_count, Events events)
    : name_(settings.name),
      stats_(shard_count),
      caches_(new ThreadCache[std::max<std::size_t>(shard_count, 1)]),
      cache_count_(std::max<std::size_t>(shard_count, 1)),
      events_(std::move(events)) {
  State state;
  state.settings = std::make_shared<const PoolConfig>(std::move(settings));
  std::lock_guard lock(state_mutex_);
  publish(std::move(state));
}

template <class F>
auto Pool::with_state(F&& f) {
  const std::size_t shard = current_shard();
  if (shard == 0 || shard >= cache_count_) {
    const auto state = load_state();
    return f(*state);
  }
  ThreadCache& cache = caches_[shard];
  if (cache.generation != generation_.load(std::memory_order_acquire)) {
    std::lock_guard lock(state_mutex_);
    cache.state = state_;
    cache.generation = generation_.load(std::memory_order_relaxed);
  }
  return f(*cache.state);
}

std::size_t Pool::next_rotation() {
  const std::size_t shard = current_shard();
  if (shard == 0 || shard >= cache_count_)
    return shared_rotation_.fetch_add(1, std::memory_order_relaxed);
  return caches_[shard].rotation++;
}

std::shared_ptr<const Pool::State> Pool::load_state() const {
  std::lock_guard lock(state_mutex_);
  return state_;
}

void Pool::publish(State state) {
  state_ = std::make_shared<const State>(std::move(state));
  generation_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const PoolConfig> Pool::settings() {
  return with_state([](const State& state) { return state.settings; });
}

void Pool::update_settings(PoolConfig settings) {
  {
    std::lock_guard lock(state_mutex_);
    State state = *state_;
    for (const auto& backend : state.backends)
      backend->set_concurrency(settings.concurrency);
    state.settings = std::make_shared<const PoolConfig>(std::move(settings));
    publish(std::move(state));
  }
  serve_queue();  // a larger concurrency may let waiters in
}

std::shared_ptr<Backend> Pool::add_backend(std::string name, std::vector<Endpoint> endpoints,
                                           Backend::Membership membership, std::string label) {
  std::shared_ptr<Backend> backend;
  {
    std::lock_guard lock(state_mutex_);
    State state = *state_;
    auto label_errors = label.empty() ? nullptr : series_.counters_for(label);
    backend = std::make_shared<Backend>(std::move(name), std::move(endpoints),
                                        state.settings->concurrency, std::move(label),
                                        std::move(label_errors));
    backend->set_membership(membership);
    state.backends.push_back(backend);
    publish(std::move(state));
  }
  serve_queue();
  return backend;
}

void Pool::set_membership(const std::shared_ptr<Backend>& backend, Backend::Membership membership) {
  // Removed is final: draining a backend that a reload already took out keeps it out.
  if (backend->membership() == Backend::Membership::removed)
    membership = Backend::Membership::removed;
  backend->set_membership(membership);
  if (membership == Backend::Membership::ready) serve_queue();
  if (membership != Backend::Membership::ready && backend->in_flight() == 0 && events_.idle)
    events_.idle(*this, backend);
}

void Pool::remove_backend(const std::shared_ptr<Backend>& backend) {
  backend->set_membership(Backend::Membership::removed);
  {
    std::lock_guard lock(state_mutex_);
    State state = *state_;
    std::erase(state.backends, backend);
    publish(std::move(state));
  }
  serve_queue();  // waiters that had tried every other backend may now be hopeless
}

void Pool::backend_changed() {
  serve_queue();
}

std::vector<std::shared_ptr<Backend>> Pool::backends() const {
  return load_state()->backends;
}

std::shared_ptr<Backend> Pool::try_pick(std::span<Backend* const> excluded) {
  // Only a pick advances the rotation, so ties go round whatever else reads the state.
  const std::size_t rotation = next_rotation();
  return with_state([&](const State& state) -> std::shared_ptr<Backend> {
    const auto& backends = state.backends;
    std::vector<Candidate> candidates(backends.size());
    // A few rounds: each failed CAS means another thread took a slot meanwhile.
    for (int round = 0; round < 4; ++round) {
      for (std::size_t i = 0; i < backends.size(); ++i) {
        const Backend& b = *backends[i];
        const bool is_excluded = std::find(excluded.begin(), excluded.end(), &b) != excluded.end();
        candidates[i] = {b.in_flight(), b.concurrency(), b.routable() && !is_excluded};
      }
      const auto chosen = choose_least_busy(candidates, rotation);
      if (!chosen) return nullptr;
      const std::shared_ptr<Backend>& backend = backends[*chosen];
      if (!backend->try_reserve()) continue;
      // Drain handshake: the owner sets `draining` and then reads in_flight; we
      // raised in_flight and then read the membership (all seq_cst), so either
      // the owner sees our slot and waits for `idle`, or we see the drain and
      // give the slot back, reporting `idle` if we were the last. (Not through
      // release(): the queue's lock may be held here, and no waiter wants a
      // slot on a draining backend.)
      if (backend->membership() == Backend::Membership::ready) return backend;
      if (backend->release() == 0 && events_.idle) events_.idle(*this, backend);
    }
    return nullptr;
  });
}

bool Pool::hopeless(std::span<Backend* const> excluded) {
  return with_state([&](const State& state) {
    if (state.backends.empty()) return false;  // its owner may be starting some: wait
    return std::all_of(state.backends.begin(), state.backends.end(), [&](const auto& b) {
      return !b->up() || std::find(excluded.begin(), excluded.end(), b.get()) != excluded.end();
    });
  });
}

void Pool::release(const std::shared_ptr<Backend>& backend) {
  const std::uint32_t left = backend->release();
  if (queued_.load(std::memory_order_seq_cst) > 0) serve_queue();
  if (left == 0 && backend->membership() != Backend::Membership::ready && events_.idle)
    events_.idle(*this, backend);
}

void Pool::serve_queue() {
  if (queued_.load(std::memory_order_seq_cst) == 0) return;
  std::lock_guard lock(queue_mutex_);
  serve_queue_locked();
}

void Pool::serve_queue_locked() {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    const std::shared_ptr<Waiter> waiter = *it;
    auto backend = try_pick(waiter->excluded);
    if (!backend) {
      // Without exclusions, failing means no slot is free anywhere: stop here.
      if (waiter->excluded.empty()) return;
      ++it;
      continue;
    }
    waiter->granted = std::move(backend);
    waiter->in_queue = false;
    it = waiters_.erase(it);
    queued_.fetch_sub(1, std::memory_order_seq_cst);
    asio::post(waiter->timer.get_executor(), [waiter] { waiter->timer.cancel(); });
  }
}

std::chrono::nanoseconds Pool::oldest_wait() const {
  std::lock_guard lock(queue_mutex_);
  if (waiters_.empty()) return std::chrono::nanoseconds(0);
  return std::chrono::steady_clock::now() - waiters_.front()->since;
}

namespace {

// Returns only when the client has closed (or failed); otherwise it reads body
// bytes into `early_body` while there is room, then waits until cancelled.
// The exchange has put the client socket in non-blocking mode.
asio::awaitable<void> watch_for_close(Socket& client, std::vector<char>& early_body,
                                      std::uint64_t& body_remaining) {
  for (;;) {
    auto [wait_error] =
        co_await client.async_wait(Socket::wait_read, as_tuple(asio::use_awaitable));
    if (wait_error) co_return;
    asio::error_code ec;
    if (body_remaining > 0 && early_body.size() < early_body.capacity()) {
      const std::size_t before = early_body.size();
      const std::size_t room =
          std::min<std::uint64_t>(early_body.capacity() - before, body_remaining);
      early_body.resize(before + room);
      const std::size_t n = client.read_some(asio::buffer(early_body.data() + before, room), ec);
      early_body.resize(before + n);
      body_remaining -= n;
      if (ec == asio::error::would_block) continue;
      if (ec) co_return;
    } else if (body_remaining == 0) {
      // Past the body: only a close (or bytes a client should not send) can come.
      char discard[512];
      client.read_some(asio::buffer(discard), ec);
      if (ec && ec != asio::error::would_block) co_return;
    } else {
      // The body does not fit: a close cannot be seen behind it. Wait for the slot.
      asio::steady_timer forever(client.get_executor(),
                                 std::chrono::steady_clock::time_point::max());
      co_await forever.async_wait(as_tuple(asio::use_awaitable));
      co_return;  // only cancellation ends that wait
    }
  }
}

}  // namespace

Lease Pool::try_acquire(std::span<Backend* const> excluded) {
  if (queued_.load(std::memory_order_seq_cst) != 0) return {};  // FIFO: waiters go first
  auto backend = try_pick(excluded);
  return backend ? Lease(this, std::move(backend)) : Lease();
}

asio::awaitable<Acquisition> Pool::acquire(Socket& client, std::span<Backend* const> excluded,
                                           std::vector<char>& early_body,
                                           std::uint64_t& body_remaining) {
  Acquisition result;
  if (Lease lease = try_acquire(excluded)) {
    result.outcome = AcquireOutcome::granted;
    result.lease = std::move(lease);
    co_return result;
  }
  if (hopeless(excluded)) co_return result;  // no_backend

  const auto settings = this->settings();
  auto waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor, excluded);
  result.queued = true;
  {
    std::lock_guard lock(queue_mutex_);
    if (waiters_.size() >= settings->queue_size) {
      result.outcome = AcquireOutcome::queue_full;
      co_return result;
    }
    waiter->position = waiters_.insert(waiters_.end(), waiter);
    waiter->in_queue = true;
    queued_.fetch_add(1, std::memory_order_seq_cst);
    serve_queue_locked();  // FIFO: the head goes first, and we may be it
  }

  bool granted = false;
  {
    std::lock_guard lock(queue_mutex_);
    granted = waiter->granted != nullptr;
  }
  bool client_closed = false;
  if (!granted) {
    waiter->timer.expires_after(settings->queue_timeout);
    auto first = co_await (waiter->timer.async_wait(as_tuple(asio::use_awaitable)) ||
                           watch_for_close(client, early_body, body_remaining));
    client_closed = first.index() == 1;
  }

  std::shared_ptr<Backend> backend;
  {
    std::lock_guard lock(queue_mutex_);
    if (waiter->in_queue) {
      waiters_.erase(waiter->position);
      waiter->in_queue = false;
      queued_.fetch_sub(1, std::memory_order_seq_cst);
    }
    backend = std::move(waiter->granted);
  }
  result.waited = std::chrono::steady_clock::now() - waiter->since;
  if (backend) result.lease = Lease(this, std::move(backend));  // given back at once if closed
  if (client_closed) {
    result.lease.reset();
    result.outcome = AcquireOutcome::client_closed;
  } else if (result.lease) {
    result.outcome = AcquireOutcome::granted;
  } else {
    result.outcome = AcquireOutcome::queue_timeout;
  }
  co_return result;
}

}  // namespace scgi::proxy
