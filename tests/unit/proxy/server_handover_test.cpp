// The balancer's handed state as --upgrade-check reads it: the connections
// still sending their request head, handed over to the next image, must be
// well formed, or the upgrade is refused before anything changes.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "scgi/config.hpp"
#include "scgi/proxy/proxy_server.hpp"

using nlohmann::json;
using scgi::proxy::ProxyServer;

namespace {

// The state of a balancer with pool "app", as handed over, and one head of it.
json state_with_a_head() {
  // A front door of its own (removed with the server): nothing connects to it.
  const std::string listen = (std::filesystem::temp_directory_path() /
                              ("scgi-handover-" + std::to_string(::getpid()) + ".sock"))
                                 .string();
  const scgi::ConfigResult parsed = scgi::parse_config(
      "[[pool]]\nname = \"app\"\nlisten = \"unix:" + listen + "\"\nbackends = [\"127.0.0.1:1\"]\n",
      "t.toml", scgi::Mode::proxy);
  REQUIRE(parsed);
  asio::io_context control;
  ProxyServer server(control, 1);
  std::vector<std::string> errors;
  REQUIRE(server.apply(parsed.config(), errors));
  std::vector<int> descriptors;
  json state = server.handover_state(descriptors);
  state["heads"] = json::array({{{"pool", "app"},
                                 {"fd", 7},
                                 {"received", "12:\u00ff"},
                                 {"accepted_at", 1000},
                                 {"deadline_at", 2000}}});
  return state;
}

}  // namespace

TEST_CASE("a handed state with a well-formed request head passes the check", "[handover]") {
  CHECK_FALSE(ProxyServer::check_handover(state_with_a_head()).has_value());
  json without = state_with_a_head();
  without.erase("heads");  // from a build that handed none over
  CHECK_FALSE(ProxyServer::check_handover(without).has_value());
}

TEST_CASE("a malformed request head in the handed state fails the check", "[handover]") {
  const auto refused = [](const std::string& key, const json& value) {
    json state = state_with_a_head();
    state["heads"][0][key] = value;
    const auto problem = ProxyServer::check_handover(state);
    INFO(key << " = " << value.dump());
    CHECK(problem.has_value());
  };
  refused("fd", -1);
  refused("fd", "seven");
  refused("received", "\u0100");  // a character no byte is written as
  refused("received", 12);
  refused("pool", "elsewhere");  // a pool the state does not have
  refused("accepted_at", "soon");
  refused("deadline_at", nullptr);
  json state = state_with_a_head();
  state["heads"][0].erase("fd");
  CHECK(ProxyServer::check_handover(state).has_value());
  state["heads"] = json::object({{"not", "a list"}});
  CHECK(ProxyServer::check_handover(state).has_value());
}
