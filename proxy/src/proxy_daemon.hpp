// scgi-proxy's life: serve the configuration, reload it on SIGHUP, reopen
// logs on SIGUSR1, stop gracefully on SIGTERM/SIGINT.
#pragma once

#include <string>

#include "scgi/config.hpp"

namespace scgi::proxy {

// Runs until stopped by a signal; returns the process exit code.
int run_proxy_daemon(const std::string& config_path, const Config& config);

}  // namespace scgi::proxy
