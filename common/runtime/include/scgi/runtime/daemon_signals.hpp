// Both daemons' signals, taken through the event loop (never real work in a
// signal handler): SIGHUP reloads, SIGUSR1 reopens logs, SIGUSR2 upgrades
// (replaces the program in place), SIGTERM/SIGINT stop gracefully and then
// end the control loop.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include <functional>

namespace scgi {

struct SignalActions {
  std::function<asio::awaitable<void>()> reload;
  std::function<void()> reopen_logs;
  std::function<asio::awaitable<void>(int signal)> stop;  // control.run() returns after it
  std::function<asio::awaitable<void>()> upgrade;         // returns only when it failed
};

// Starts handling the signals on `control`; call before control.run(). Then
// unblocks them: an upgrade blocks them across its exec (program_upgrade.hpp).
void handle_daemon_signals(asio::io_context& control, SignalActions actions);

}  // namespace scgi
