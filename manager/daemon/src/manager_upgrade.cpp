#include "manager_upgrade.hpp"

#include <unistd.h>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <fmt/ranges.h>

#include "config_diff.hpp"
#include "control_server.hpp"
#include "scgi/control_protocol.hpp"
#include "scgi/log.hpp"
#include "supervisor.hpp"

namespace scgi::manager {
namespace {

using nlohmann::json;
using R = Result<std::string>;

// How long an upgrade waits for a rolling restart to end before it gives up.
constexpr auto kBusyWaitLimit = std::chrono::minutes(10);

}  // namespace

ManagerUpgrade::ManagerUpgrade(asio::io_context& control, proxy::ProxyServer& server,
                               Supervisor& supervisor, ControlServer& control_server,
                               const std::unique_ptr<MetricsServer>& metrics)
    : control_(control),
      server_(server),
      supervisor_(supervisor),
      control_server_(control_server),
      metrics_(metrics) {
  steps_ = {.program = "scgi-manager",
            .state = [this](std::vector<int>& descriptors) { return state(descriptors); },
            .pause = [this]() -> asio::awaitable<void> {
              co_await server_.pause(supervisor_.shutdown_timeout());
              // Scrapes meanwhile wait in its backlog. A stop that began needs
              // no pause: the upgrade ends at the next step.
              if (metrics_ && !server_.stopping()) co_await metrics_->pause();
            },
            .resume =
                [this] {
                  server_.resume();
                  if (metrics_) metrics_->resume();
                },
            .blocked = [this]() -> std::optional<std::string> {
              if (server_.stopping()) return "the manager began to stop";
              if (supervisor_.busy()) return "a rolling restart (or a removed pool's stop) runs";
              return std::nullopt;
            }};
}

json ManagerUpgrade::state(std::vector<int>& descriptors) const {
  json out{{"balancer", server_.handover_state(descriptors)},
           {"supervisor", supervisor_.handover_state(descriptors)},
           {"control_fd", control_server_.listening_fd()}};
  descriptors.push_back(control_server_.listening_fd());
  if (metrics_) out["metrics"] = metrics_->handover_state(descriptors);
  if (reply_fd_ >= 0) {
    out["reply"] = {{"fd", reply_fd_}, {"id", reply_id_}};
    descriptors.push_back(reply_fd_);
  }
  return out;
}

asio::awaitable<R> ManagerUpgrade::run(int connection_fd, json id) {
  if (running_) co_return R::fail("an upgrade is running already");
  // The new program reads the file: it must be what runs, or the workers it
  // takes over would run a command, user or socket the file no longer says.
  if (auto differs = file_differs()) {
    log_error("upgrade refused: {}; this program serves on", *differs);
    co_return R::fail("upgrade refused: " + *differs);
  }
  running_ = true;
  reply_fd_ = connection_fd;
  reply_id_ = std::move(id);
  // A rolling restart's steps, and a removed pool's stop, live in this image
  // only: let them end first.
  if (supervisor_.busy()) {
    log_info("upgrade: waiting for the rolling restart (or a removed pool's stop) to end");
    asio::steady_timer pause(control_);
    const auto give_up = std::chrono::steady_clock::now() + kBusyWaitLimit;
    while (supervisor_.busy() && !server_.stopping() &&
           std::chrono::steady_clock::now() < give_up) {
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
  }
  // From here on, commands that change pools wait for the outcome.
  supervisor_.set_upgrading(true);
  const std::string error = co_await upgrade_program(control_.get_executor(), steps_);
  supervisor_.set_upgrading(false);
  running_ = false;
  reply_fd_ = -1;
  log_error("upgrade failed: {}; this program serves on", error);
  co_return R::fail("upgrade failed: " + error + "; the running program serves on");
}

std::optional<std::string> ManagerUpgrade::file_differs() const {
  const Config& running = supervisor_.running_config();
  const ConfigResult file = load_config(running.path, Mode::manager, running_as());
  if (!file) {
    std::vector<std::string> errors;
    for (const ConfigError& error : file.errors())
      errors.push_back(error.to_string());
    return fmt::format("{} has errors: {}: fix it, then upgrade", running.path,
                       fmt::join(errors, "; "));
  }
  const auto changes = describe_changes(running, file.config());
  if (changes.empty()) return std::nullopt;
  return fmt::format("{} differs from the running configuration ({}): run scgictl reload first",
                     running.path, fmt::join(changes, "; "));
}

void ManagerUpgrade::answer_request(const HandedState& handed) {
  const json& state = handed.daemon_state();
  if (!state.contains("reply")) return;
  const int fd = state.at("reply").at("fd").get<int>();
  if (!adopt_descriptor(fd)) return;
  const json& id = state.at("reply").at("id");
  const std::string line =
      handed.failed_upgrade()
          ? control::error_reply(id, "upgrade failed: " + *handed.failed_upgrade() +
                                         "; the previous program serves on")
          : control::ok_reply(
                id,
                {{"message", fmt::format("upgraded in place from {} to {} (pid {}); the "
                                         "workers, sockets and counters carried over",
                                         handed.previous_version(), SCGI_VERSION, ::getpid())}});
  // A short line on a socket that had nothing queued: it fits at once.
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    log_warn("upgrade: could not answer the scgictl that asked for it");
  ::close(fd);
}

std::optional<std::string> ManagerUpgrade::check_state(const json& state) {
  try {
    if (auto problem = proxy::ProxyServer::check_handover(state.at("balancer"))) return problem;
    if (auto problem = Supervisor::check_handover(state.at("supervisor"))) return problem;
    if (state.contains("metrics"))
      if (auto problem = MetricsServer::check_handover(state.at("metrics"))) return problem;
    state.at("control_fd").get<int>();
    if (state.contains("reply")) state.at("reply").at("fd").get<int>();
  } catch (const std::exception& e) {
    return e.what();
  }
  return std::nullopt;
}

}  // namespace scgi::manager
