#include "health/recovery_probe.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>

#include "scgi/log.hpp"
#include "scgi/runtime/connect_probe.hpp"

namespace scgi::proxy {

asio::awaitable<void> probe_until_up(std::weak_ptr<Pool> weak_pool,
                                     std::shared_ptr<Backend> backend,
                                     const std::atomic<bool>& stopping) {
  // Probes back off from 100 ms to 5 s: quick recovery, little noise when it stays down.
  auto delay = std::chrono::milliseconds(100);
  const auto ceiling = std::chrono::milliseconds(5000);
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!stopping.load() && backend->membership() != Backend::Membership::removed) {
    timer.expires_after(delay);
    co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    auto pool = weak_pool.lock();
    if (!pool || stopping.load()) co_return;
    const auto connect_timeout = pool->settings()->connect_timeout;
    for (const Endpoint& endpoint : backend->endpoints()) {
      if (co_await connect_probe(endpoint, connect_timeout)) {
        if (backend->record_connect_success()) {
          log_info("pool {}: backend {} is up again (probe connected)", pool->name(),
                   backend->name());
          pool->backend_changed();
        }
        co_return;
      }
    }
    delay = std::min(delay * 2, ceiling);
  }
}

}  // namespace scgi::proxy
