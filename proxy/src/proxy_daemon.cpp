#include "proxy_daemon.hpp"

#include <asio/io_context.hpp>

#include <csignal>

#include "scgi/log.hpp"
#include "scgi/proxy/proxy_server.hpp"
#include "scgi/runtime/daemon_signals.hpp"
#include "scgi/runtime/metrics_server.hpp"
#include "scgi/runtime/program_upgrade.hpp"
#include "scgi/runtime/service_notifier.hpp"

namespace scgi::proxy {
namespace {

// Re-reads the file and applies it; `running` becomes the new configuration.
// False when the file is rejected (the running configuration stays).
bool reload(ProxyServer& server, const std::string& path, Config& running) {
  const ConfigResult result = load_config(path, Mode::proxy);
  if (!result) {
    log_error("reload: {} has errors; the running configuration stays", path);
    for (const ConfigError& error : result.errors())
      log_error("{}", error.to_string());
    return false;
  }
  std::vector<std::string> errors;
  if (!server.apply(result.config(), errors)) {
    log_error("reload: cannot apply {}; the running configuration stays", path);
    for (const std::string& error : errors)
      log_error("{}", error);
    return false;
  }
  const Config& next = result.config();
  if (next.proxy.threads != running.proxy.threads)
    log_warn("reload: threads changes at the next start; {} threads keep running",
             server.thread_count());
  if (next.metrics.listen != running.metrics.listen)
    log_warn("reload: [metrics] listen changes at the next start");
  running = next;
  log_info("reload: {} applied", path);
  return true;
}

}  // namespace

int run_proxy_daemon(const std::string& config_path, const Config& config,
                     std::optional<HandedState>& handed) {
  ::signal(SIGPIPE, SIG_IGN);  // a client gone mid-write is an error code, not a death
  asio::io_context control(1);
  ProxyServer server(control, config.proxy.threads);
  if (handed) server.adopt(handed->daemon_state().at("balancer"));

  std::vector<std::string> errors;
  if (!server.apply(config, errors)) {
    for (const std::string& error : errors)
      log_error("{}", error);
    return fail_start(handed, "fix the errors above");
  }
  std::unique_ptr<MetricsServer> metrics;
  // An upgrade's new image takes the previous one's socket and waiting scrapes.
  const nlohmann::json* handed_metrics = handed && handed->daemon_state().contains("metrics")
                                             ? &handed->daemon_state().at("metrics")
                                             : nullptr;
  const auto start_metrics = [&] {
    return start_metrics_server(config.metrics, "scgi-proxy", {server.metrics()}, handed_metrics,
                                metrics);
  };
  if (!start_metrics()) {
    if (!handed) return 1;
    keep_trying(control, start_metrics);  // the balancer serves on meanwhile
  }

  Config running = config;
  bool upgrading = false;  // a reload waits for the next SIGHUP meanwhile
  const UpgradeSteps upgrade_steps{
      .program = "scgi-proxy",
      .state =
          [&](std::vector<int>& descriptors) {
            nlohmann::json state{{"balancer", server.handover_state(descriptors)}};
            if (metrics) state["metrics"] = metrics->handover_state(descriptors);
            return state;
          },
      .pause = [&]() -> asio::awaitable<void> {
        co_await server.pause(running.proxy.shutdown_timeout);
        // Scrapes meanwhile wait in its backlog. A stop that began needs no
        // pause: the upgrade ends at the next step.
        if (metrics && !server.stopping()) co_await metrics->pause();
      },
      .resume =
          [&] {
            server.resume();
            if (metrics) metrics->resume();
          },
      .blocked = [&]() -> std::optional<std::string> {
        if (server.stopping()) return "scgi-proxy began to stop";
        return std::nullopt;
      }};
  handle_daemon_signals(control,
                        {.reload = [&]() -> asio::awaitable<void> {
                           if (upgrading) {
                             log_warn("reload: an upgrade is running; send SIGHUP again after it");
                             co_return;
                           }
                           notify_reloading("reloading " + config_path);
                           const bool applied = reload(server, config_path, running);
                           notify_ready(reload_status(applied, running));
                           co_return;
                         },
                         .reopen_logs = [&] { server.reopen_logs(); },
                         .stop = [&](int signal) -> asio::awaitable<void> {
                           const auto timeout = running.proxy.shutdown_timeout;
                           notify_stopping(stopping_status(timeout));
                           log_info("signal {}: stopping; requests in flight finish within {}",
                                    signal, format_duration(timeout));
                           co_await server.shut_down(timeout);
                         },
                         .upgrade = [&]() -> asio::awaitable<void> {
                           if (upgrading) {
                             log_warn("upgrade: one is running already");
                             co_return;
                           }
                           upgrading = true;
                           const std::string error =
                               co_await upgrade_program(control.get_executor(), upgrade_steps);
                           upgrading = false;
                           log_error("upgrade failed: {}; this program serves on", error);
                         }});
  // Serving only once signals are ours: a SIGTERM right after the first
  // request is a graceful stop (the Unix socket file removed), not a death.
  server.start();
  finish_upgrade(handed);
  handed.reset();
  // Only now: whoever waits for this line may signal the daemon at once.
  log_info("scgi-proxy running with {} threads", server.thread_count());
  notify_ready(serving_status(running));
  control.run();
  log_info("scgi-proxy stopped");
  return 0;
}

}  // namespace scgi::proxy
