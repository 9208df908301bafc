#include "manager_daemon.hpp"

#include <asio/io_context.hpp>

#include <csignal>

#include "control_server.hpp"
#include "manager_metrics.hpp"
#include "manager_upgrade.hpp"
#include "runtime_folder.hpp"
#include "scgi/log.hpp"
#include "scgi/proxy/proxy_server.hpp"
#include "scgi/runtime/daemon_signals.hpp"
#include "scgi/runtime/metrics_server.hpp"
#include "scgi/runtime/service_notifier.hpp"
#include "supervisor.hpp"

namespace scgi::manager {
int run_manager_daemon(const std::string& config_path, const Config& config,
                       std::optional<HandedState>& handed) {
  ::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error code, not a death
  // After an upgrade, what the previous image handed over (manager_upgrade.hpp).
  const nlohmann::json* state = handed ? &handed->daemon_state() : nullptr;
  // The asking scgictl's connection, answered once this image serves: no
  // worker started meanwhile may inherit it.
  if (state && state->contains("reply")) adopt_descriptor(state->at("reply").at("fd").get<int>());
  // Removed at exit, after the supervisor (declared later) is gone.
  auto runtime_dir =
      state ? RuntimeFolder::adopt(state->at("supervisor").at("runtime_dir").get<std::string>())
            : RuntimeFolder::create();
  if (!runtime_dir) {
    return fail_start(handed, runtime_dir.error());
  }

  asio::io_context control(1);
  proxy::ProxyServer server(control, config.proxy.threads);
  if (state) server.adopt(state->at("balancer"));
  Config running = config;
  running.path = config_path;
  Supervisor supervisor(control, server, running, runtime_dir.value().path());

  // First the control socket: if another manager runs on it, start nothing.
  ControlServer control_server(control, config.manager.control_socket, config.manager.control_group,
                               supervisor);
  std::string control_error;
  const bool control_open =
      state ? adopt_descriptor(state->at("control_fd").get<int>()) &&
                  control_server.adopt(state->at("control_fd").get<int>(), control_error)
            : control_server.open(control_error);
  if (!control_open) {
    log_error("{}", control_error);
    return fail_start(handed, "fix the control socket (or stop the manager that uses it)");
  }

  // The supervisor's metrics next to the balancer's, on the same /metrics.
  auto manager_metrics =
      std::make_shared<ManagerMetrics>([&supervisor] { return supervisor.snapshot(); });
  std::unique_ptr<MetricsServer> metrics;
  // An upgrade's new image takes the previous one's socket and waiting scrapes.
  const nlohmann::json* handed_metrics =
      state && state->contains("metrics") ? &state->at("metrics") : nullptr;
  const auto start_metrics = [&] {
    return start_metrics_server(config.metrics, "scgi-manager", {server.metrics(), manager_metrics},
                                handed_metrics, metrics);
  };
  // A first start fails before any worker starts.
  if (!handed && !start_metrics()) return 1;
  ManagerUpgrade upgrade(control, server, supervisor, control_server, metrics);
  supervisor.on_upgrade([&](int connection_fd, nlohmann::json id) {
    return upgrade.run(connection_fd, std::move(id));
  });
  // Signals are taken over before any worker starts: a SIGTERM during the
  // start stops the manager cleanly, a SIGHUP is a reload, neither is the
  // signal's default death.
  handle_daemon_signals(
      control, {.reload = [&]() -> asio::awaitable<void> { co_await supervisor.reload(); },
                .reopen_logs = [&] { supervisor.reopen_logs(); },
                .stop = [&](int signal) -> asio::awaitable<void> {
                  const auto timeout = supervisor.shutdown_timeout();
                  notify_stopping(stopping_status(timeout));
                  log_info(
                      "signal {}: stopping; requests in flight finish within {}, then the workers "
                      "stop",
                      signal, format_duration(timeout));
                  co_await server.shut_down(timeout);
                  co_await supervisor.stop_all();
                  control_server.close();
                },
                .upgrade = [&]() -> asio::awaitable<void> {
                  co_await upgrade.run(-1, nullptr);  // logs why it failed
                }});
  std::vector<std::string> errors;
  if (!supervisor.start(errors, state ? &state->at("supervisor") : nullptr)) {
    for (const std::string& error : errors)
      log_error("{}", error);
    return fail_start(handed, "fix the errors above");
  }
  // An upgrade's image: after the last step that may give the state back.
  if (handed && !start_metrics()) keep_trying(control, start_metrics);  // the pools serve on
  server.start();
  if (handed) {
    finish_upgrade(handed);
    ManagerUpgrade::answer_request(*handed);
    handed.reset();
  }
  log_info("scgi-manager running: {} pools, {} proxy threads", config.pools.size(),
           server.thread_count());
  notify_ready(serving_status(running));

  control.run();
  log_info("scgi-manager stopped");
  return 0;
}

}  // namespace scgi::manager
