// scgi-proxy: balances SCGI requests across backends it does not run (fixed
// addresses or DNS). Thin: the command line, the configuration, then the library.
#include <CLI/CLI.hpp>

#include <iostream>
#include <string>

#include "scgi/config.hpp"
#include "scgi/proxy/proxy_daemon.hpp"

int main(int argc, char** argv) {
  CLI::App app{"Balances SCGI requests across backends it does not run.", "scgi-proxy"};
  std::string config_path;
  bool check = false;
  app.add_option("--config", config_path, "The configuration file (TOML)")->required();
  app.add_flag("--check", check,
               "Validate the configuration and exit: 0 when valid, 2 with every error");
  app.set_version_flag("--version", "scgi-proxy " SCGI_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version exit 0; every usage error exits 2.
    return app.exit(error) == 0 ? 0 : 2;
  }

  const scgi::ConfigResult result = scgi::load_config(config_path, scgi::Mode::proxy);
  if (!result) {
    for (const scgi::ConfigError& error : result.errors())
      std::cerr << error.to_string() << '\n';
    if (!check) std::cerr << "scgi-proxy: not starting: fix the errors above\n";
    return 2;
  }
  if (check) {
    std::cout << scgi::summarize(result.config()) << '\n';
    return 0;
  }
  return scgi::proxy::run_proxy_daemon(config_path, result.config());
}
