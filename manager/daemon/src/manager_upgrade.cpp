#include "manager_upgrade.hpp"

#include <unistd.h>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include "control_server.hpp"
#include "scgi/control_protocol.hpp"
#include "scgi/log.hpp"
#include "supervisor.hpp"

namespace scgi::manager {
namespace {

using nlohmann::json;
using R = Result<std::string>;

// How long an upgrade waits for a rolling restart to end before it gives up.
constexpr auto kRestartWaitLimit = std::chrono::minutes(10);

}  // namespace

ManagerUpgrade::ManagerUpgrade(asio::io_context& control, proxy::ProxyServer& server,
                               Supervisor& supervisor, ControlServer& control_server,
                               std::function<void()> metrics_off, std::function<void()> metrics_on)
    : control_(control),
      server_(server),
      supervisor_(supervisor),
      control_server_(control_server),
      metrics_off_(std::move(metrics_off)),
      metrics_on_(std::move(metrics_on)) {
  steps_ = {.program = "scgi-manager",
            .state = [this](std::vector<int>& descriptors) { return state(descriptors); },
            .pause = [this]() -> asio::awaitable<void> {
              co_await server_.pause(supervisor_.shutdown_timeout());
              metrics_off_();
            },
            .resume =
                [this] {
                  server_.resume();
                  metrics_on_();
                }};
}

json ManagerUpgrade::state(std::vector<int>& descriptors) const {
  json out{{"balancer", server_.handover_state(descriptors)},
           {"supervisor", supervisor_.handover_state(descriptors)},
           {"control_fd", control_server_.listening_fd()}};
  descriptors.push_back(control_server_.listening_fd());
  if (reply_fd_ >= 0) {
    out["reply"] = {{"fd", reply_fd_}, {"id", reply_id_}};
    descriptors.push_back(reply_fd_);
  }
  return out;
}

asio::awaitable<R> ManagerUpgrade::run(int connection_fd, json id) {
  if (running_) co_return R::fail("an upgrade is running already");
  running_ = true;
  reply_fd_ = connection_fd;
  reply_id_ = std::move(id);
  // A rolling restart's steps live in this image only: let it end first.
  if (supervisor_.restarting()) {
    log_info("upgrade: waiting for the rolling restart to end");
    asio::steady_timer pause(control_);
    const auto give_up = std::chrono::steady_clock::now() + kRestartWaitLimit;
    while (supervisor_.restarting() && std::chrono::steady_clock::now() < give_up) {
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
  }
  std::string error = "a rolling restart is still running after 10 minutes; try again later";
  if (!supervisor_.restarting()) error = co_await upgrade_program(control_.get_executor(), steps_);
  running_ = false;
  reply_fd_ = -1;
  log_error("upgrade failed: {}; this program serves on", error);
  co_return R::fail("upgrade failed: " + error + "; the running program serves on");
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
    state.at("control_fd").get<int>();
    if (state.contains("reply")) state.at("reply").at("fd").get<int>();
  } catch (const std::exception& e) {
    return e.what();
  }
  return std::nullopt;
}

}  // namespace scgi::manager
