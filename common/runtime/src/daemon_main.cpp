#include "scgi/runtime/daemon_main.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

#include "scgi/runtime/file_limit.hpp"

namespace scgi {

int daemon_main(int argc, char** argv, const DaemonInfo& info, const ServeFunction& serve) {
  remember_program(argc, argv);
  CLI::App app{info.description, info.name};
  std::string config_path;
  bool check = false;
  app.add_option("--config", config_path, "The configuration file (TOML)")->required();
  app.add_flag("--check", check,
               "Validate the configuration and exit: 0 when valid, 2 with every error");
  bool upgrade_check = false;
  app.add_flag("--upgrade-check", upgrade_check)->group("");  // run by an upgrade, not by people
  app.set_version_flag("--version", info.name + " " + info.version);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version exit 0; every usage error exits 2.
    return app.exit(error) == 0 ? 0 : 2;
  }

  std::optional<HandedState> handed = take_handed_state();
  const ConfigResult result = load_config(config_path, info.mode, running_as());
  if (!result) {
    for (const ConfigError& error : result.errors())
      std::cerr << error.to_string() << '\n';
    if (!check) std::cerr << info.name << ": not starting: fix the errors above\n";
    // An upgrade's new image with a file broken since its check: the
    // previous program takes its state back and serves on.
    if (handed && !upgrade_check)
      std::cerr << info.name << ": "
                << handed->return_to_previous("the configuration file has errors") << '\n';
    return 2;
  }
  if (handed) {
    auto problem = handed->problem(info.name);
    try {
      // The previous program back takes its own state as it is: refusing
      // it, it could only exit, with its workers.
      if (!problem && info.check_state && !handed->failed_upgrade())
        problem = info.check_state(handed->daemon_state());
    } catch (const std::exception& e) {
      problem = e.what();
    }
    if (problem) {
      std::cerr << info.name << ": cannot take over the running " << info.name
                << ": the handed state: " << *problem << '\n';
      if (upgrade_check) return 2;
      // Nothing was changed yet: the previous program takes its state back.
      std::cerr << info.name << ": "
                << handed->return_to_previous("the new program cannot read the handed state: " +
                                              *problem)
                << '\n';
      return 1;
    }
  }
  if (upgrade_check) {
    if (!handed) {
      std::cerr << info.name << ": --upgrade-check: no state was handed over\n";
      return 2;
    }
    approve_upgrade();
    return 0;
  }
  if (check) {
    std::cout << summarize(result.config()) << '\n';
    return 0;
  }
  // Before anything opens a descriptor that a low soft limit would refuse.
  report_file_limit(raise_file_limit(), result.config());
  return serve(config_path, result.config(), handed);
}

}  // namespace scgi
