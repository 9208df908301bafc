// The real WorkerLauncher: fork/exec (worker_spawn.hpp) with stdout and stderr
// piped into the pool's log (worker_logs.hpp), kill(2) of the process group,
// and the readiness probe on the control context.
#pragma once

#include <asio/io_context.hpp>

#include "worker_launcher.hpp"

namespace scgi::manager {

class WorkerLogs;

class ProcessLauncher final : public WorkerLauncher {
 public:
  ProcessLauncher(asio::io_context& control, WorkerLogs& logs) : control_(control), logs_(logs) {}

  Result<pid_t> launch(const PoolConfig& pool, std::uint32_t index,
                       const WorkerSocket& socket) override;
  std::optional<std::string> signal_group(pid_t pid, int signal) override;
  asio::awaitable<Readiness> wait_until_ready(pid_t pid, ProbeChecks checks,
                                              Clock::time_point deadline) override;

 private:
  asio::io_context& control_;
  WorkerLogs& logs_;
};

}  // namespace scgi::manager
