// scgi-proxy's life: serve the configuration, reload it on SIGHUP, reopen
// logs on SIGUSR1, upgrade in place on SIGUSR2, stop gracefully on
// SIGTERM/SIGINT.
#pragma once

#include <string>

#include "scgi/config.hpp"
#include "scgi/runtime/program_upgrade.hpp"

namespace scgi::proxy {

// Runs until stopped by a signal; returns the process exit code. `handed`:
// the previous image's state, when an upgrade started this one.
int run_proxy_daemon(const std::string& config_path, const Config& config,
                     std::optional<HandedState>& handed);

}  // namespace scgi::proxy
