#include "readiness_probe.hpp"

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

enum class Attempt { accepted, not_yet, refused };

// One attempt: connected, verified, and the worker closed back (or answered anything).
asio::awaitable<Attempt> attempt(asio::any_io_executor executor, const Endpoint& endpoint,
                                 const ProbeChecks& checks, Clock::time_point deadline,
                                 std::string& refusal) {
  // Shared with the deadline's handler, which may run after this frame is gone.
  auto socket = std::make_shared<Socket>(executor);
  asio::steady_timer watch(executor, deadline);
  watch.async_wait([socket](asio::error_code ec) {
    asio::error_code ignored;
    if (!ec) socket->close(ignored);
  });
  auto [connect_error] = co_await socket->async_connect(endpoint, as_tuple(asio::use_awaitable));
  if (connect_error) {
    watch.cancel();
    co_return Attempt::not_yet;
  }
  if (checks.verify) {
    if (auto why = checks.verify(socket->native_handle())) {
      watch.cancel();
      refusal = std::move(*why);
      co_return Attempt::refused;
    }
  }
  asio::error_code ec;
  socket->shutdown(asio::socket_base::shutdown_send, ec);
  char byte = 0;
  auto [read_error, n] =
      co_await socket->async_read_some(asio::buffer(&byte, 1), as_tuple(asio::use_awaitable));
  watch.cancel();
  // EOF or a reset: the worker accepted and closed. Aborted: the deadline passed.
  const bool closed_back =
      n > 0 || read_error == asio::error::eof || read_error == asio::error::connection_reset;
  co_return closed_back ? Attempt::accepted : Attempt::not_yet;
}

}  // namespace

asio::awaitable<Readiness> wait_until_ready(asio::any_io_executor executor, ProbeChecks checks,
                                            Clock::time_point deadline) {
  auto retry = std::chrono::milliseconds(kFirstRetry);
  asio::steady_timer pause(executor);
  while (Clock::now() < deadline) {
    ProbeTarget target = checks.locate();
    if (target.refusal) co_return Readiness{Readiness::Outcome::refused, *target.refusal};
    for (const Endpoint& endpoint : target.endpoints) {
      std::string refusal;
      const Attempt result = co_await attempt(executor, endpoint, checks, deadline, refusal);
      if (result == Attempt::accepted) co_return Readiness{Readiness::Outcome::ready, {}};
      if (result == Attempt::refused)
        co_return Readiness{Readiness::Outcome::refused, std::move(refusal)};
    }
    pause.expires_after(std::min<Clock::duration>(retry, deadline - Clock::now()));
    co_await pause.async_wait(as_tuple(asio::use_awaitable));
    retry = std::min(retry * 2, kMaxRetry);
  }
  co_return Readiness{Readiness::Outcome::timed_out, {}};
}

}  // namespace scgi::manager
