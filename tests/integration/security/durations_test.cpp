// Security: durations (see docs/security.md), tried from outside against the
// real binaries. Every timeout is added to the clock; one so long that the sum
// overflows would make a deadline that has already passed (or never comes), so
// the file is refused at --check, and the longest allowed one still serves.
#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>

#include "../support/harness.hpp"

using namespace scgi::test;
using scgi::Address;

namespace {

// The 1-based line of `text` on which `needle` first appears.
std::size_t line_of(const std::string& text, const std::string& needle) {
  const auto end = text.begin() + static_cast<std::ptrdiff_t>(text.find(needle));
  return static_cast<std::size_t>(std::count(text.begin(), end, '\n')) + 1;
}

}  // namespace

TEST_CASE("a duration too long for the clock is refused at --check with where it is",
          "[security][durations]") {
  TempDir dir;
  const std::string key = "request_timeout = \"3000000h\"";
  const Address listen = loopback(free_port());
  dir.write("scgi.toml", managed_pool_config({.listen = listen,
                                              .command = sample_worker_command(),
                                              .pool_keys = key,
                                              .metrics_port = free_port()},
                                             dir.file("scgi.sock")));
  // Split mode reads the same key the same way.
  dir.write(
      "proxy.toml",
      one_pool_config({.listen = listen, .backends = {loopback(free_port())}, .pool_keys = key}));
  for (const auto& [binary, file] :
       {std::pair<std::string, std::string>{"scgi-manager", "scgi.toml"},
        {"scgi-proxy", "proxy.toml"}}) {
    INFO(binary);
    const std::string path = dir.file(file);
    std::ifstream in(path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Process check = Process::start({built_binary(binary), "--check", "--config", path},
                                   dir.file(binary + ".log"));
    const auto status = check.wait(30s);
    REQUIRE(status);
    INFO(check.log());
    CHECK(exited_with(*status, 2));
    // FILE:LINE:COLUMN at the value, which starts at column 19.
    CHECK(check.log().find(path + ":" + std::to_string(line_of(text, key)) +
                           ":19: request_timeout: duration \"3000000h\" is too large: at most "
                           "8760h (a year)") != std::string::npos);
  }
}

TEST_CASE("the longest allowed duration leaves the clock room: the daemon starts and serves",
          "[security][durations]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagedPool spec{.listen = listen,
                   .command = sample_worker_command(),
                   .pool_keys =
                       "workers = 1\n"
                       "queue_timeout = \"8760h\"\n"
                       "client_timeout = \"8760h\"\n"
                       "connect_timeout = \"8760h\"\n"
                       "request_timeout = \"8760h\"\n"
                       "ready_timeout = \"8760h\"\n"
                       "max_lifetime = \"8760h\"\n"
                       "stop_timeout = \"8760h\"\n"
                       "restart_backoff = [\"8760h\", \"8760h\"]",
                   .manager_keys = "shutdown_timeout = \"8760h\""};
  ManagerProcess manager(dir, spec, 1);
  const Response response = send_request(listen, get_request("/"));
  INFO(response.bytes);
  INFO(manager.process().log());
  CHECK(response.status() == 200);
  // A request that waits for its slot in the queue is served too.
  Process load = start_load(dir, listen, "1s", "load.json", {"--query", "sleep_ms=2"});
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  CHECK(report["requests"].get<int>() > 10);
  CHECK(report["errors"].get<int>() == 0);
  const int status = manager.process().stop();
  CHECK(describe_status(status) == "exited 0");
}
