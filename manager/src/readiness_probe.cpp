#include "scgi/manager/readiness_probe.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <memory>

namespace scgi::manager {
namespace {

using asio::experimental::as_tuple;
constexpr auto kFirstRetry = std::chrono::milliseconds(10);
constexpr auto kMaxRetry = std::chrono::milliseconds(200);

// One attempt: connected, and the worker closed back (or answered anything).
asio::awaitable<bool> accepted(asio::any_io_executor executor, const proxy::Endpoint& endpoint,
                               Clock::time_point deadline) {
  // Shared with the deadline's handler, which may run after this frame is gone.
  auto socket = std::make_shared<proxy::Socket>(executor);
  asio::steady_timer watch(executor, deadline);
  watch.async_wait([socket](asio::error_code ec) {
    asio::error_code ignored;
    if (!ec) socket->close(ignored);
  });
  auto [connect_error] = co_await socket->async_connect(endpoint, as_tuple(asio::use_awaitable));
  if (connect_error) {
    watch.cancel();
    co_return false;
  }
  asio::error_code ec;
  socket->shutdown(asio::socket_base::shutdown_send, ec);
  char byte = 0;
  auto [read_error, n] =
      co_await socket->async_read_some(asio::buffer(&byte, 1), as_tuple(asio::use_awaitable));
  watch.cancel();
  // EOF or a reset: the worker accepted and closed. Aborted: the deadline passed.
  co_return n > 0 || read_error == asio::error::eof || read_error == asio::error::connection_reset;
}

}  // namespace

asio::awaitable<bool> wait_until_accepting(asio::any_io_executor executor,
                                           std::vector<proxy::Endpoint> endpoints,
                                           Clock::time_point deadline) {
  auto retry = std::chrono::milliseconds(kFirstRetry);
  asio::steady_timer pause(executor);
  while (Clock::now() < deadline) {
    for (const proxy::Endpoint& endpoint : endpoints)
      if (co_await accepted(executor, endpoint, deadline)) co_return true;
    pause.expires_after(std::min<Clock::duration>(retry, deadline - Clock::now()));
    co_await pause.async_wait(as_tuple(asio::use_awaitable));
    retry = std::min(retry * 2, kMaxRetry);
  }
  co_return false;
}

}  // namespace scgi::manager
