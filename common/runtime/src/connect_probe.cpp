#include "scgi/runtime/connect_probe.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <memory>

namespace scgi {

asio::awaitable<bool> connect_probe(const Endpoint& endpoint, std::chrono::milliseconds timeout) {
  const auto executor = co_await asio::this_coro::executor;
  // Shared with the deadline's handler, which may run after this coroutine
  // returned when the deadline passed just as the connect completed.
  auto probe = std::make_shared<Socket>(executor);
  // Closing the socket at the deadline ends the connect with an error.
  asio::steady_timer deadline(executor, timeout);
  deadline.async_wait([probe](asio::error_code ec) {
    asio::error_code ignored;
    if (!ec) probe->close(ignored);
  });
  auto [ec] =
      co_await probe->async_connect(endpoint, asio::experimental::as_tuple(asio::use_awaitable));
  deadline.cancel();
  co_return !ec;
}

}  // namespace scgi
