// The command line both daemons share: `--config FILE [--check] [--version]`.
// Loads and validates the file, prints every error as FILE:LINE:COLUMN, and
// either reports (--check) or hands the valid configuration to `serve`.
#pragma once

#include <functional>
#include <string>

#include "scgi/config.hpp"

namespace scgi {

struct DaemonInfo {
  std::string name;         // "scgi-proxy"
  std::string description;  // one line for --help
  std::string version;
  Mode mode;
};

// Exit codes: 0 valid (--check) or served and stopped cleanly, 2 usage or
// configuration errors, otherwise what `serve` returns.
int daemon_main(int argc, char** argv, const DaemonInfo& info,
                const std::function<int(const std::string& path, const Config&)>& serve);

}  // namespace scgi
