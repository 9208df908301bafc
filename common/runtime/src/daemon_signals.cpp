#include "scgi/runtime/daemon_signals.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/signal_set.hpp>
#include <asio/use_awaitable.hpp>

#include <csignal>
#include <memory>

#include "scgi/log.hpp"
#include "scgi/runtime/program_upgrade.hpp"

namespace scgi {
namespace {

using asio::experimental::as_tuple;

asio::awaitable<void> signal_loop(asio::io_context& control,
                                  std::unique_ptr<asio::signal_set> signals,
                                  SignalActions actions) {
  for (;;) {
    auto [ec, signal] = co_await signals->async_wait(as_tuple(asio::use_awaitable));
    if (ec) co_return;
    if (signal == SIGHUP) {
      co_await actions.reload();
    } else if (signal == SIGUSR1) {
      actions.reopen_logs();
    } else if (signal == SIGUSR2) {
      // Beside this loop, not in it: a SIGTERM during the upgrade stops the
      // daemon (and cancels the upgrade) instead of waiting behind it.
      asio::co_spawn(control, actions.upgrade(), log_failure("upgrade"));
    } else {
      co_await actions.stop(signal);
      control.stop();
      co_return;
    }
  }
}

}  // namespace

void handle_daemon_signals(asio::io_context& control, SignalActions actions) {
  // Taken over now, not when the loop first runs: a SIGHUP (or SIGTERM) that
  // comes right after the daemon says it runs is a reload (or a stop), never
  // the signal's default death.
  auto signals = std::make_unique<asio::signal_set>(control, SIGTERM, SIGINT, SIGHUP);
  signals->add(SIGUSR1);
  signals->add(SIGUSR2);
  asio::co_spawn(control, signal_loop(control, std::move(signals), std::move(actions)),
                 log_failure("signal handling"));
  unblock_daemon_signals();
}

}  // namespace scgi
