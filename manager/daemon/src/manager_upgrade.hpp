// scgi-manager's upgrade in place (docs/operations.md, "Upgrade the manager
// or the proxy itself"), on SIGUSR2 or `scgictl upgrade`: refused while the
// configuration file differs from what runs; waits for a rolling restart to
// end; then runs program_upgrade.hpp's steps with the manager's parts (the
// balancer, the supervisor with its workers, the control socket, /metrics, and the
// asking scgictl connection, which the next image answers), commands that
// change pools refused meanwhile, and cancelled by a stop. One at a time.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>

#include "scgi/proxy/proxy_server.hpp"
#include "scgi/result.hpp"
#include "scgi/runtime/metrics_server.hpp"
#include "scgi/runtime/program_upgrade.hpp"

namespace scgi::manager {

class ControlServer;
class Supervisor;

class ManagerUpgrade {
 public:
  // `metrics`: the /metrics server when there is one (it may start later),
  // paused and handed over with the rest.
  ManagerUpgrade(asio::io_context& control, proxy::ProxyServer& server, Supervisor& supervisor,
                 ControlServer& control_server, const std::unique_ptr<MetricsServer>& metrics);

  // Completes only when the upgrade failed (why). `connection_fd` (or -1):
  // the scgictl connection that asked, answered by the next image to `id`.
  asio::awaitable<Result<std::string>> run(int connection_fd, nlohmann::json id);

  // In the next image, once it serves: answers the scgictl that asked for the
  // upgrade (the handed state names its connection), then closes it.
  static void answer_request(const HandedState& handed);
  // The whole state, checked without using it (--upgrade-check).
  static std::optional<std::string> check_state(const nlohmann::json& state);

 private:
  nlohmann::json state(std::vector<int>& descriptors) const;
  // Why the configuration file is not what runs (errors, or changes since the
  // last reload), or nullopt.
  std::optional<std::string> file_differs() const;

  asio::io_context& control_;
  proxy::ProxyServer& server_;
  Supervisor& supervisor_;
  ControlServer& control_server_;
  const std::unique_ptr<MetricsServer>& metrics_;
  UpgradeSteps steps_;
  bool running_ = false;
  int reply_fd_ = -1;
  nlohmann::json reply_id_;
};

}  // namespace scgi::manager
