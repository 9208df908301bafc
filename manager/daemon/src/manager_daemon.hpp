// scgi-manager's life: the balancer, the supervisor, metrics and the control
// socket in one process; reload on SIGHUP, reopen logs on SIGUSR1, stop on
// SIGTERM/SIGINT (stop accepting, drain, stop every worker, remove the
// sockets it made, exit 0).
#pragma once

#include <string>

#include "scgi/config.hpp"
#include "scgi/runtime/program_upgrade.hpp"

namespace scgi::manager {

// Runs until stopped by a signal; returns the process exit code. `handed`:
// the previous image's state, when an upgrade started this one.
int run_manager_daemon(const std::string& config_path, const Config& config,
                       std::optional<HandedState>& handed);

}  // namespace scgi::manager
