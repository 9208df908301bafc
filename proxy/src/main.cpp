// scgi-proxy: balances SCGI requests across backends it does not run (fixed
// addresses or DNS). Thin: the command line, the configuration, then the library.
#include "proxy_daemon.hpp"
#include "scgi/proxy/proxy_server.hpp"
#include "scgi/runtime/daemon_main.hpp"
#include "scgi/runtime/metrics_server.hpp"

int main(int argc, char** argv) {
  const scgi::DaemonInfo info{
      "scgi-proxy", "Balances SCGI requests across backends it does not run.", SCGI_VERSION,
      scgi::Mode::proxy, [](const nlohmann::json& state) {
        if (state.contains("metrics"))
          if (auto problem = scgi::MetricsServer::check_handover(state.at("metrics")))
            return problem;
        return scgi::proxy::ProxyServer::check_handover(state.at("balancer"));
      }};
  return scgi::daemon_main(argc, argv, info, scgi::proxy::run_proxy_daemon);
}
