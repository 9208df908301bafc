// The manager's supervision as a whole: one PoolSupervisor per pool that runs
// workers, child exits reaped (SIGCHLD → waitpid loop) and handed to their
// pool, reloads, the worker logs, and scgictl's commands (ControlHandler).
// Runs on the control thread; snapshot() may be called from any thread.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control_handler.hpp"
#include "pool_supervisor.hpp"
#include "process_launcher.hpp"
#include "scgi/config.hpp"
#include "scgi/proxy/proxy_server.hpp"
#include "slow_log.hpp"
#include "usage_sampler.hpp"
#include "worker_logs.hpp"

namespace scgi::manager {

class Supervisor : public ControlHandler {
 public:
  // `runtime_dir` holds the workers' Unix sockets; `config` is the running
  // configuration, read again from config.path on reload.
  Supervisor(asio::io_context& control, proxy::ProxyServer& proxy, const Config& config,
             std::string runtime_dir);
  ~Supervisor() override;

  // Applies the configuration to the proxy and starts every pool's workers,
  // or, after an upgrade, takes over those of `handed` (handover_state()).
  // False (and `errors`) when the proxy cannot serve it (a port in use).
  bool start(std::vector<std::string>& errors, const nlohmann::json* handed = nullptr);
  // --- Upgrade (program_upgrade.hpp). ---
  // The supervisor's part of the state; `descriptors` gets what the next
  // image keeps open (worker sockets and output pipes).
  nlohmann::json handover_state(std::vector<int>& descriptors) const;
  static std::optional<std::string> check_handover(const nlohmann::json& state);
  // A rolling restart runs somewhere, or a pool removed by a reload is still
  // stopping its workers: an upgrade waits for it (the exec would cut it short).
  bool busy() const;
  // While an upgrade runs, commands that change pools (and reloads) are refused.
  void set_upgrading(bool upgrading) { upgrading_ = upgrading; }
  // The configuration running now (the last one applied).
  const Config& running_config() const { return config_; }
  // What `scgictl upgrade` runs (the daemon's whole upgrade).
  using UpgradeHandler =
      std::function<asio::awaitable<Result<std::string>>(int connection_fd, nlohmann::json id)>;
  void on_upgrade(UpgradeHandler handler) { upgrade_ = std::move(handler); }
  // Stops every worker of every pool (each within its stop_timeout); returns
  // once all are gone.
  asio::awaitable<void> stop_all();
  // SIGUSR1: reopen the worker log files and the access log.
  void reopen_logs();

  // Pools and workers as last sampled (every 250 ms), for metrics scrapes.
  std::vector<control::PoolStatus> snapshot() const;

  // ControlHandler (scgictl).
  Result<std::vector<control::PoolStatus>> status(const std::string& pool) override;
  asio::awaitable<Result<std::string>> start(WorkerTarget target) override;
  asio::awaitable<Result<std::string>> stop(WorkerTarget target) override;
  asio::awaitable<Result<std::string>> restart(WorkerTarget target, Progress progress) override;
  asio::awaitable<Result<std::string>> scale(std::string pool, std::uint32_t workers) override;
  asio::awaitable<Result<std::string>> reload() override;
  asio::awaitable<Result<std::string>> upgrade(int connection_fd, nlohmann::json id) override;
  asio::awaitable<Result<std::string>> drain(WorkerTarget target, bool wait) override;
  asio::awaitable<Result<std::string>> undrain(WorkerTarget target) override;
  std::vector<std::string> recent_logs(const WorkerTarget& target, std::size_t lines) override;
  std::uint64_t subscribe_logs(const WorkerTarget& target, LogCallback callback) override;
  void unsubscribe_logs(std::uint64_t subscription) override;
  Result<std::vector<nlohmann::json>> slowlog(const std::string& pool) override;

  // As the running configuration says (a reload may have changed it).
  Milliseconds shutdown_timeout() const { return config_.manager.shutdown_timeout; }

 private:
  void create_pool(const std::shared_ptr<proxy::Pool>& pool);
  void adopt_pools(const nlohmann::json& state);
  void sync_pools(const Config& config);
  asio::awaitable<void> reap_children();
  asio::awaitable<void> refresh_snapshot();
  void take_snapshot();
  Result<PoolSupervisor*> find(const WorkerTarget& target);
  Result<PoolSupervisor*> find_to_change(const WorkerTarget& target);
  asio::awaitable<Result<std::string>> apply_reload();

  asio::io_context& control_;
  proxy::ProxyServer& proxy_;
  Config config_;
  std::string runtime_dir_;
  WorkerLogs logs_;
  SlowLog slow_log_;
  // Before the pools, which use them.
  UsageSampler usage_;
  ProcessLauncher launcher_;
  SteadyClock clock_;
  std::map<std::string, std::unique_ptr<PoolSupervisor>> pools_;
  // Pools removed by a reload, kept until their workers are gone.
  std::vector<std::unique_ptr<PoolSupervisor>> leaving_;
  asio::signal_set child_signals_;
  bool started_ = false;
  bool stopping_ = false;
  UpgradeHandler upgrade_;
  bool upgrading_ = false;

  mutable std::mutex snapshot_mutex_;
  std::vector<control::PoolStatus> snapshot_;
};

}  // namespace scgi::manager
