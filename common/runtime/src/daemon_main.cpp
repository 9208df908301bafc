#include "scgi/runtime/daemon_main.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

#include "scgi/runtime/file_limit.hpp"

namespace scgi {

int daemon_main(int argc, char** argv, const DaemonInfo& info,
                const std::function<int(const std::string& path, const Config&)>& serve) {
  CLI::App app{info.description, info.name};
  std::string config_path;
  bool check = false;
  app.add_option("--config", config_path, "The configuration file (TOML)")->required();
  app.add_flag("--check", check,
               "Validate the configuration and exit: 0 when valid, 2 with every error");
  app.set_version_flag("--version", info.name + " " + info.version);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version exit 0; every usage error exits 2.
    return app.exit(error) == 0 ? 0 : 2;
  }

  const ConfigResult result = load_config(config_path, info.mode, running_as());
  if (!result) {
    for (const ConfigError& error : result.errors())
      std::cerr << error.to_string() << '\n';
    if (!check) std::cerr << info.name << ": not starting: fix the errors above\n";
    return 2;
  }
  if (check) {
    std::cout << summarize(result.config()) << '\n';
    return 0;
  }
  // Before anything opens a descriptor that a low soft limit would refuse.
  report_file_limit(raise_file_limit(), result.config());
  return serve(config_path, result.config());
}

}  // namespace scgi
