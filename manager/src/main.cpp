// scgi-manager: runs pools of SCGI workers and balances requests across them,
// all in one process. Thin: the command line, the configuration, then the library.
#include <iostream>

#include "scgi/daemon_main.hpp"

int main(int argc, char** argv) {
  const scgi::DaemonInfo info{"scgi-manager",
                              "Runs pools of SCGI workers and balances requests across them.",
                              SCGI_VERSION, scgi::Mode::manager};
  return scgi::daemon_main(argc, argv, info, [](const std::string& path, const scgi::Config&) {
    std::cerr << "scgi-manager: " << path
              << " is valid, but supervising workers is not implemented yet: only --check "
                 "works so far (scgi-proxy serves pools with fixed backends)\n";
    return 1;
  });
}
