// scgi-manager: runs pools of SCGI workers and balances requests across them,
// all in one process. Thin: the command line, the configuration, then the library.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "scgi/config.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Runs pools of SCGI workers and balances requests across them.", "scgi-manager"};
  std::string config_path;
  bool check = false;
  app.add_option("--config", config_path, "The configuration file (TOML)")->required();
  app.add_flag("--check", check,
               "Validate the configuration and exit: 0 when valid, 2 with every error");
  app.set_version_flag("--version", "scgi-manager " SCGI_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version exit 0; every usage error exits 2.
    return app.exit(error) == 0 ? 0 : 2;
  }

  const scgi::ConfigResult result = scgi::load_config(config_path, scgi::Mode::manager);
  if (!result) {
    for (const scgi::ConfigError& error : result.errors())
      std::cerr << error.to_string() << '\n';
    if (!check) std::cerr << "scgi-manager: not starting: fix the errors above\n";
    return 2;
  }
  if (check) {
    std::cout << scgi::summarize(result.config()) << '\n';
    return 0;
  }
  std::cerr << "scgi-manager: " << config_path
            << " is valid, but this build cannot serve yet: only --check is implemented so far\n";
  return 1;
}
