// The command line both daemons share: `--config FILE [--check] [--version]`.
// Loads and validates the file, prints every error as FILE:LINE:COLUMN, and
// either reports (--check) or hands the valid configuration to `serve`, with
// the state the previous image handed over when this start is an upgrade
// (program_upgrade.hpp). The hidden `--upgrade-check` reads both and says
// whether this program can take over.
#pragma once

#include <functional>
#include <string>

#include "scgi/config.hpp"
#include "scgi/runtime/program_upgrade.hpp"

namespace scgi {

struct DaemonInfo {
  std::string name;         // "scgi-proxy"
  std::string description;  // one line for --help
  std::string version;
  Mode mode;
  // Why the daemon could not take the handed state over (nullopt: it can);
  // reads it without changing anything.
  std::function<std::optional<std::string>(const nlohmann::json& state)> check_state;
};

using ServeFunction =
    std::function<int(const std::string& path, const Config&, std::optional<HandedState>& handed)>;

// Exit codes: 0 valid (--check) or served and stopped cleanly, 2 usage or
// configuration errors, otherwise what `serve` returns.
int daemon_main(int argc, char** argv, const DaemonInfo& info, const ServeFunction& serve);

}  // namespace scgi
