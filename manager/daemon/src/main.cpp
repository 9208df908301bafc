// scgi-manager: runs pools of SCGI workers and balances requests across them,
// all in one process. Thin: the command line, the configuration, then the library.
#include "manager_daemon.hpp"
#include "manager_upgrade.hpp"
#include "scgi/runtime/daemon_main.hpp"

int main(int argc, char** argv) {
  const scgi::DaemonInfo info{
      "scgi-manager", "Runs pools of SCGI workers and balances requests across them.", SCGI_VERSION,
      scgi::Mode::manager, scgi::manager::ManagerUpgrade::check_state};
  return scgi::daemon_main(argc, argv, info, scgi::manager::run_manager_daemon);
}
