// What a pool's supervisor does to processes: start a worker, signal its
// process group, and probe its socket until it is ready. Injected, so that
// unit tests script starts, exits and readiness without any process; the real
// one is ProcessLauncher. Exits come back through PoolSupervisor::on_exit.
#pragma once

#include <sys/types.h>
#include <asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "readiness_probe.hpp"
#include "restart_policy.hpp"
#include "scgi/config.hpp"
#include "scgi/result.hpp"
#include "worker_socket.hpp"

namespace scgi::manager {

class WorkerLauncher {
 public:
  virtual ~WorkerLauncher() = default;
  // Starts worker `index` of `pool` on `socket`, its output captured: its pid,
  // or what made the start fail (the message names the worker).
  virtual Result<pid_t> launch(const PoolConfig& pool, std::uint32_t index,
                               const WorkerSocket& socket) = 0;
  // Sends `signal` to the worker's process group: nullopt, or why it failed.
  virtual std::optional<std::string> signal_group(pid_t pid, int signal) = 0;
  // Ready once the worker `pid` accepts where `checks` say (see readiness_probe.hpp).
  virtual asio::awaitable<Readiness> wait_until_ready(pid_t pid, ProbeChecks checks,
                                                      Clock::time_point deadline) = 0;
};

}  // namespace scgi::manager
