#include "scgi/config.hpp"

#include <catch2/catch.hpp>

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using scgi::Milliseconds;
using scgi::Mode;

namespace {

std::vector<std::string> errors_of(std::string_view text, Mode mode) {
  const scgi::ConfigResult result = scgi::parse_config(text, "t.toml", mode);
  std::vector<std::string> out;
  for (const scgi::ConfigError& error : result.errors())
    out.push_back(error.to_string());
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines)
    out += line + "\n";
  return out;
}

// The file has exactly one error, at `position` ("LINE:COLUMN"), whose
// message contains `part`: one mistake, one message, no echoes.
void check_error(std::string_view text, std::string_view position, std::string_view part,
                 Mode mode = Mode::manager) {
  const std::vector<std::string> errors = errors_of(text, mode);
  INFO(joined(errors));
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], StartsWith("t.toml:" + std::string(position) + ": "));
  CHECK_THAT(errors[0], Contains(std::string(part)));
}

scgi::Config config_of(std::string_view text, Mode mode = Mode::manager) {
  scgi::ConfigResult result = scgi::parse_config(text, "t.toml", mode);
  std::vector<std::string> errors;
  for (const scgi::ConfigError& error : result.errors())
    errors.push_back(error.to_string());
  INFO(joined(errors));
  REQUIRE(result);
  return std::move(result).config();
}

// The source tree, for the shipped examples (absolute, whatever the build's
// working directory).
std::filesystem::path source_root() {
  return SCGI_SOURCE_DIR;
}

constexpr std::string_view kManagerMinimal = R"([[pool]]
name = "app"
command = ["app"]
)";

constexpr std::string_view kProxyMinimal = R"([[pool]]
name = "app"
listen = "127.0.0.1:4000"
backends = ["127.0.0.1:5000"]
)";

}  // namespace

// ---------------------------------------------------------------------------
// Defaults and reading

TEST_CASE("a minimal manager file gets every default of docs/design.md", "[config]") {
  const scgi::Config config = config_of(kManagerMinimal);
  CHECK(config.path == "t.toml");
  CHECK(config.manager.control_socket == "/run/scgi/scgi.sock");
  CHECK(config.manager.control_group.empty());
  CHECK(config.manager.log_dir.empty());
  CHECK(config.manager.shutdown_timeout == Milliseconds(30'000));
  CHECK(config.proxy.threads == 0);
  CHECK(config.proxy.access_log.empty());
  CHECK(config.proxy.spill_dir == "/var/tmp");
  CHECK(config.proxy.spill_limit == 4ull << 30);
  REQUIRE(config.metrics.listen);
  CHECK(config.metrics.listen->to_string() == "127.0.0.1:9100");

  REQUIRE(config.pools.size() == 1);
  const scgi::PoolConfig& pool = config.pools[0];
  CHECK(pool.name == "app");
  CHECK(pool.position.line == 1);
  CHECK(pool.position.column == 1);
  CHECK_FALSE(pool.listen);
  CHECK(pool.kind == scgi::PoolKind::command);
  CHECK(pool.command == std::vector<std::string>{"app"});
  CHECK(pool.backends.empty());
  CHECK_FALSE(pool.discover);
  CHECK(pool.discover_interval == Milliseconds(5'000));
  CHECK_FALSE(pool.resolver);
  CHECK(pool.socket == scgi::SocketMode::inherit);
  CHECK(pool.min_workers == 4);
  CHECK(pool.max_workers == 4);
  CHECK_FALSE(pool.is_dynamic());
  CHECK(pool.concurrency == 1);
  CHECK(pool.queue_size == 1024);
  CHECK(pool.queue_timeout == Milliseconds(5'000));
  CHECK(pool.client_timeout == Milliseconds(10'000));
  CHECK(pool.connect_timeout == Milliseconds(1'000));
  CHECK(pool.request_timeout == Milliseconds(60'000));
  CHECK(pool.max_header_bytes == 64 * 1024);
  CHECK(pool.max_body_bytes == 0);
  CHECK(pool.body_buffer_bytes == 64 * 1024);
  CHECK(pool.response_buffer_bytes == 256 * 1024);
  CHECK(pool.response_spill_bytes == 1ull << 30);
  CHECK(pool.client_min_rate == 8 * 1024);
  CHECK(pool.queue_time);
  CHECK_FALSE(pool.keep_request_start);
  CHECK_FALSE(pool.create_traceparent);
  CHECK(pool.max_requests == 0);
  CHECK(pool.max_lifetime == Milliseconds(0));
  CHECK(pool.max_rss_bytes == 0);
  CHECK(pool.cwd.empty());
  CHECK(pool.env.empty());
  CHECK(pool.user.empty());
  CHECK(pool.group.empty());
  CHECK(pool.stop_timeout == Milliseconds(10'000));
  CHECK(pool.restart_backoff.first == Milliseconds(100));
  CHECK(pool.restart_backoff.ceiling == Milliseconds(30'000));
  CHECK(pool.ready_timeout == Milliseconds(10'000));
}

TEST_CASE("a minimal proxy file gets the defaults too", "[config]") {
  const scgi::Config config = config_of(kProxyMinimal, Mode::proxy);
  REQUIRE(config.pools.size() == 1);
  const scgi::PoolConfig& pool = config.pools[0];
  CHECK(pool.kind == scgi::PoolKind::backends);
  REQUIRE(pool.listen);
  CHECK(pool.listen->to_string() == "127.0.0.1:4000");
  REQUIRE(pool.backends.size() == 1);
  CHECK(pool.backends[0].to_string() == "127.0.0.1:5000");
  CHECK(pool.concurrency == 1);
  CHECK(pool.queue_size == 1024);
  CHECK(pool.request_timeout == Milliseconds(60'000));
  REQUIRE(config.metrics.listen);
  CHECK(config.metrics.listen->port == 9100);
}

TEST_CASE("scgi-proxy reads its shutdown_timeout from [proxy], scgi-manager from [manager]",
          "[config]") {
  CHECK(config_of(kProxyMinimal, Mode::proxy).proxy.shutdown_timeout == Milliseconds(30'000));
  const std::string proxy = "[proxy]\nshutdown_timeout = \"2s\"\n" + std::string(kProxyMinimal);
  CHECK(config_of(proxy, Mode::proxy).proxy.shutdown_timeout == Milliseconds(2'000));
  const std::string manager = "[proxy]\nshutdown_timeout = \"2s\"\n" + std::string(kManagerMinimal);
  check_error(manager, "2:1", "move it there");
}

TEST_CASE("every key of a manager file is read into the struct", "[config]") {
  const scgi::Config config = config_of(R"([manager]
control_socket = "/tmp/scgi-test.sock"
control_group = "root"
log_dir = "/var/log/scgi"
shutdown_timeout = "45s"

[proxy]
threads = 3
access_log = "-"
spill_dir = "/srv/spill"
spill_limit = "20GiB"

[metrics]
listen = "[::1]:9200"

[[pool]]
name = "web_1"
listen = "unix:/run/scgi/web.sock"
command = ["/usr/bin/python3", "app.py", "--port", "{port}", ""]
socket = "port"
min_workers = 2
max_workers = 16
concurrency = 4
queue_size = 0
queue_timeout = "2s"
client_timeout = "3s"
connect_timeout = "250ms"
request_timeout = "1m30s"
max_header = "8KiB"
max_body = "10MiB"
body_buffer = "1MiB"
response_buffer = "0"
response_spill = "0"
client_min_rate = "1KiB"
queue_time = false
create_traceparent = true
max_requests = 1000
max_lifetime = "1h"
max_rss = "512MiB"
cwd = "/srv/app"
env = { APP_ENV = "production", PORT = "{port}", EMPTY = "" }
user = "root"
group = "root"
stop_timeout = "20s"
restart_backoff = ["250ms", "1m"]
ready_timeout = "15s"

[[pool]]
name = "other"
listen = "127.0.0.1:4001"
command = ["worker", "--socket", "{socket}"]
socket = "unix"
workers = 7

[[pool]]
name = "fixed"
listen = "127.0.0.1:4002"
backends = ["127.0.0.1:5001", "[::1]:5002", "unix:/run/app.sock"]
)");
  CHECK(config.manager.control_socket == "/tmp/scgi-test.sock");
  CHECK(config.manager.control_group == "root");
  CHECK(config.manager.log_dir == "/var/log/scgi");
  CHECK(config.manager.shutdown_timeout == Milliseconds(45'000));
  CHECK(config.proxy.threads == 3);
  CHECK(config.proxy.access_log == "-");
  CHECK(config.proxy.spill_dir == "/srv/spill");
  CHECK(config.proxy.spill_limit == 20ull << 30);
  REQUIRE(config.metrics.listen);
  CHECK(config.metrics.listen->to_string() == "[::1]:9200");

  REQUIRE(config.pools.size() == 3);
  const scgi::PoolConfig& web = config.pools[0];
  CHECK(web.name == "web_1");
  CHECK(web.position.line == 16);
  CHECK(web.position.column == 1);
  REQUIRE(web.listen);
  CHECK(web.listen->to_string() == "unix:/run/scgi/web.sock");
  CHECK(web.kind == scgi::PoolKind::command);
  CHECK(web.command ==
        std::vector<std::string>{"/usr/bin/python3", "app.py", "--port", "{port}", ""});
  CHECK(web.socket == scgi::SocketMode::port);
  CHECK(web.min_workers == 2);
  CHECK(web.max_workers == 16);
  CHECK(web.is_dynamic());
  CHECK(web.concurrency == 4);
  CHECK(web.queue_size == 0);
  CHECK(web.queue_timeout == Milliseconds(2'000));
  CHECK(web.client_timeout == Milliseconds(3'000));
  CHECK(web.connect_timeout == Milliseconds(250));
  CHECK(web.request_timeout == Milliseconds(90'000));
  CHECK(web.max_header_bytes == 8 * 1024);
  CHECK(web.max_body_bytes == 10ull << 20);
  CHECK(web.body_buffer_bytes == 1ull << 20);
  CHECK(web.response_buffer_bytes == 0);
  CHECK(web.response_spill_bytes == 0);
  CHECK(web.client_min_rate == 1024);
  CHECK_FALSE(web.queue_time);
  CHECK(web.create_traceparent);
  CHECK(web.max_requests == 1000);
  CHECK(web.max_lifetime == Milliseconds(3'600'000));
  CHECK(web.max_rss_bytes == 512ull << 20);
  CHECK(web.cwd == "/srv/app");
  CHECK(web.env == std::map<std::string, std::string>{
                       {"APP_ENV", "production"}, {"PORT", "{port}"}, {"EMPTY", ""}});
  CHECK(web.user == "root");
  CHECK(web.group == "root");
  CHECK(web.stop_timeout == Milliseconds(20'000));
  CHECK(web.restart_backoff.first == Milliseconds(250));
  CHECK(web.restart_backoff.ceiling == Milliseconds(60'000));
  CHECK(web.ready_timeout == Milliseconds(15'000));

  const scgi::PoolConfig& other = config.pools[1];
  CHECK(other.position.line == 48);
  CHECK(other.socket == scgi::SocketMode::unix_socket);
  CHECK(other.min_workers == 7);
  CHECK(other.max_workers == 7);
  CHECK_FALSE(other.is_dynamic());

  const scgi::PoolConfig& fixed = config.pools[2];
  CHECK(fixed.kind == scgi::PoolKind::backends);
  REQUIRE(fixed.backends.size() == 3);
  CHECK(fixed.backends[0].to_string() == "127.0.0.1:5001");
  CHECK(fixed.backends[1].to_string() == "[::1]:5002");
  CHECK(fixed.backends[2].to_string() == "unix:/run/app.sock");
  CHECK(fixed.command.empty());
}

TEST_CASE("every key of a proxy file is read into the struct", "[config]") {
  const scgi::Config config = config_of(R"([proxy]
threads = 8
access_log = "/var/log/scgi/access.log"

[metrics]
listen = ""

[[pool]]
name = "k8s"
listen = "0.0.0.0:4000"
discover = "dns:app.default.svc.cluster.local:5000"
discover_interval = "10s"
resolver = "10.96.0.10:53"
concurrency = 2
queue_size = 10
max_body = "1GiB"

[[pool]]
name = "plain"
listen = "[::1]:4001"
backends = ["localhost:5000"]
)",
                                        Mode::proxy);
  CHECK(config.proxy.threads == 8);
  CHECK(config.proxy.access_log == "/var/log/scgi/access.log");
  CHECK_FALSE(config.metrics.listen);
  REQUIRE(config.pools.size() == 2);
  const scgi::PoolConfig& k8s = config.pools[0];
  CHECK(k8s.kind == scgi::PoolKind::discover);
  REQUIRE(k8s.discover);
  CHECK(k8s.discover->name == "app.default.svc.cluster.local");
  CHECK(k8s.discover->port == 5000);
  CHECK(k8s.discover_interval == Milliseconds(10'000));
  REQUIRE(k8s.resolver);
  CHECK(k8s.resolver->to_string() == "10.96.0.10:53");
  CHECK(k8s.concurrency == 2);
  CHECK(k8s.queue_size == 10);
  CHECK(k8s.max_body_bytes == 1ull << 30);
}

TEST_CASE("listen \"\" means no front door, metrics listen \"\" means off", "[config]") {
  const scgi::Config config = config_of(R"([metrics]
listen = ""
[[pool]]
name = "app"
listen = ""
command = ["app"]
)");
  CHECK_FALSE(config.metrics.listen);
  CHECK_FALSE(config.pools[0].listen);
}

TEST_CASE("pool names take lowercase letters, digits, _ and -", "[config]") {
  const scgi::Config config = config_of(R"([[pool]]
name = "a-b_c-09"
command = ["app"]
)");
  CHECK(config.pools[0].name == "a-b_c-09");
}

TEST_CASE("pools keep their order and the position of their header", "[config]") {
  const scgi::Config config = config_of(R"(
[[pool]]
name = "one"
command = ["a"]

  [[pool]]
  name = "two"
  command = ["b"]
)");
  REQUIRE(config.pools.size() == 2);
  CHECK(config.pools[0].name == "one");
  CHECK(config.pools[0].position.line == 2);
  CHECK(config.pools[0].position.column == 1);
  CHECK(config.pools[1].name == "two");
  CHECK(config.pools[1].position.line == 6);
  CHECK(config.pools[1].position.column == 3);
}

TEST_CASE("min_workers may be 0 and equal to max_workers", "[config]") {
  const scgi::Config config = config_of(R"([[pool]]
name = "a"
command = ["a"]
min_workers = 0
max_workers = 3
[[pool]]
name = "b"
command = ["b"]
min_workers = 2
max_workers = 2
)");
  CHECK(config.pools[0].min_workers == 0);
  CHECK(config.pools[0].max_workers == 3);
  CHECK_FALSE(config.pools[1].is_dynamic());
}

TEST_CASE("the shipped examples pass the check in their mode", "[config]") {
  const auto examples = source_root() / "deploy" / "examples";
  const scgi::ConfigResult manager =
      scgi::load_config((examples / "scgi.toml").string(), Mode::manager);
  for (const auto& error : manager.errors())
    UNSCOPED_INFO(error.to_string());
  CHECK(manager);
  const scgi::ConfigResult proxy =
      scgi::load_config((examples / "proxy.toml").string(), Mode::proxy);
  for (const auto& error : proxy.errors())
    UNSCOPED_INFO(error.to_string());
  CHECK(proxy);
}

TEST_CASE("the summary names the pools and counts the workers", "[config]") {
  const scgi::Config config = config_of(R"([[pool]]
name = "app"
listen = "127.0.0.1:4000"
command = ["a"]
[[pool]]
name = "api"
command = ["b"]
min_workers = 2
max_workers = 16
[[pool]]
name = "legacy"
listen = "127.0.0.1:4001"
backends = ["127.0.0.1:5001", "127.0.0.1:5002"]
)");
  CHECK(scgi::summarize(config) ==
        "t.toml: OK, 3 pools, 6-20 workers: app (4 workers, listen 127.0.0.1:4000), "
        "api (2-16 workers, not balanced), legacy (2 backends, listen 127.0.0.1:4001)");
  CHECK(scgi::count_pools_and_workers(config) == "3 pools, 6-20 workers");
  CHECK(scgi::count_pools_and_workers(config_of(R"([[pool]]
name = "legacy"
listen = "127.0.0.1:4001"
backends = ["127.0.0.1:5001"]
)")) == "1 pool");
}

// ---------------------------------------------------------------------------
// Loading and formatting

TEST_CASE("an error prints as FILE:LINE:COLUMN: message, or FILE: message without a position",
          "[config]") {
  CHECK(scgi::ConfigError{"a.toml", 3, 7, "bad"}.to_string() == "a.toml:3:7: bad");
  CHECK(scgi::ConfigError{"a.toml", 0, 0, "cannot open"}.to_string() == "a.toml: cannot open");
}

TEST_CASE("load_config reads a file and names it as given", "[config]") {
  const auto path = std::filesystem::temp_directory_path() / "scgi_config_test_load.toml";
  {
    std::ofstream file(path);
    file << "[[pool]]\nname = \"app\"\ncommand = [\"a\"]\nthreads = 1\n";
  }
  const scgi::ConfigResult result = scgi::load_config(path.string(), Mode::manager);
  std::filesystem::remove(path);
  REQUIRE(result.errors().size() == 1);
  CHECK_THAT(result.errors()[0].to_string(), StartsWith(path.string() + ":4:1: "));
  CHECK_THAT(result.errors()[0].to_string(), Contains("unknown key \"threads\""));
}

TEST_CASE("a file that cannot be read is one error without a position", "[config]") {
  const scgi::ConfigResult missing = scgi::load_config("/nonexistent/scgi.toml", Mode::manager);
  REQUIRE(missing.errors().size() == 1);
  CHECK(missing.errors()[0].to_string() ==
        "/nonexistent/scgi.toml: cannot open: No such file or directory");
  const std::string directory = std::filesystem::temp_directory_path().string();
  const scgi::ConfigResult dir = scgi::load_config(directory, Mode::proxy);
  REQUIRE(dir.errors().size() == 1);
  CHECK_THAT(dir.errors()[0].to_string(), Contains("is a directory"));
}

TEST_CASE("control_socket_in finds the socket of a file that has other mistakes", "[config]") {
  const auto path = std::filesystem::temp_directory_path() /
                    ("scgi_config_test_socket." + std::to_string(::getpid()) + ".toml");
  const auto socket_of = [&](std::string_view text) {
    std::ofstream(path) << text;
    return scgi::control_socket_in(path.string());
  };
  // An unknown key and a pool without a command: the manager's to report.
  const auto named = socket_of(
      "[manager]\ncontrol_socket = \"/run/app/ctl.sock\"\ncolour = 1\n[[pool]]\nname = \"a\"\n");
  CHECK(named.value() == "/run/app/ctl.sock");
  CHECK(socket_of("[[pool]]\nname = \"a\"\n").value() == "/run/scgi/scgi.sock");
  CHECK(socket_of("").value() == scgi::ManagerConfig{}.control_socket);

  // Where it cannot tell, it says why and where.
  const auto not_toml = socket_of("[manager]\ncontrol_socket = /run/x.sock\n");
  CHECK_THAT(not_toml.error(), StartsWith(path.string() + ":2:18: invalid TOML"));
  const auto not_text = socket_of("[manager]\ncontrol_socket = 7\n");
  CHECK_THAT(not_text.error(), StartsWith(path.string() + ":2:18: [manager] control_socket"));
  CHECK_THAT(socket_of("[manager]\ncontrol_socket = \"\"\n").error(), Contains("must be a path"));
  std::filesystem::remove(path);
  CHECK(scgi::control_socket_in("/nonexistent/scgi.toml").error() ==
        "/nonexistent/scgi.toml: cannot open: No such file or directory");
}

TEST_CASE("a TOML syntax error is reported at its position", "[config]") {
  check_error("[[pool]]\nname = \"app\ncommand = [\"a\"]\n", "2:12", "invalid TOML");
  check_error("[[pool]]\nname = app\n", "2:8", "invalid TOML");
  check_error("[[pool]]\nname = \"a\"\nname = \"b\"\n", "3:8", "cannot redefine");
  check_error("[proxy]\nthreads = 99999999999999999999\n", "2:31", "invalid TOML");
}

TEST_CASE("an empty file, or one without [[pool]], is refused", "[config]") {
  check_error("", "1:1", "no [[pool]] in this file");
  check_error("[proxy]\nthreads = 2\n", "1:1", "no [[pool]]");
  check_error("pool = []\n", "1:1", "no [[pool]]");
}

TEST_CASE("[pool] with single brackets says to write [[pool]]", "[config]") {
  check_error("[pool]\nname = \"app\"\n", "1:1", "[[pool]], with double brackets");
  check_error("pool = 3\n", "1:1", "[[pool]] tables");
  check_error("pool = [1]\n", "1:9", "each pool must be a table");
}

TEST_CASE("a section that is not a table says how to write it", "[config]") {
  check_error(std::string("proxy = 1\n").append(kManagerMinimal), "1:9",
              "proxy must be a table: write [proxy]");
}

// ---------------------------------------------------------------------------
// Unknown keys

TEST_CASE("an unknown key is reported in every table, with the nearest allowed key", "[config]") {
  check_error(std::string("[proxi]\nthreads = 2\n").append(kManagerMinimal), "1:1",
              "unknown key \"proxi\" at the top level: did you mean \"proxy\"?");
  check_error(std::string("[manager]\nshutdown_timout = \"5s\"\n").append(kManagerMinimal), "2:1",
              "unknown key \"shutdown_timout\" in [manager]: did you mean \"shutdown_timeout\"?");
  check_error(std::string("[proxy]\nthread = 2\n").append(kManagerMinimal), "2:1",
              "unknown key \"thread\" in [proxy]: did you mean \"threads\"?");
  check_error(std::string("[metrics]\nlisen = \"\"\n").append(kManagerMinimal), "2:1",
              "in [metrics]: did you mean \"listen\"?");
  check_error(std::string(kManagerMinimal).append("wokers = 4\n"), "4:1",
              "unknown key \"wokers\" in [[pool]]: did you mean \"workers\"?");
  check_error(std::string(kManagerMinimal).append("  Workers = 4\n"), "4:3",
              "did you mean \"workers\"?");
}

TEST_CASE("an unknown key far from every allowed one lists the allowed keys", "[config]") {
  check_error(std::string("[proxy]\nbananas = 2\n").append(kManagerMinimal), "2:1",
              "unknown key \"bananas\" in [proxy]: the keys allowed here are threads, access_log");
  check_error(std::string("[metrics]\npath = \"/metrics\"\n").append(kManagerMinimal), "2:1",
              "the keys allowed here are listen");
}

TEST_CASE("a nested table or dotted key that is not in the schema is unknown", "[config]") {
  check_error(std::string(kManagerMinimal).append("[pool.limits]\nx = 1\n"), "4:1",
              "unknown key \"limits\" in [[pool]]");
  check_error(std::string(kManagerMinimal).append("limits.x = 1\n"), "4:1",
              "unknown key \"limits\"");
}

// ---------------------------------------------------------------------------
// Types and values

TEST_CASE("a number in quotes says to remove the quotes", "[config]") {
  check_error(std::string("[proxy]\nthreads = \"4\"\n").append(kManagerMinimal), "2:11",
              "threads must be a whole number without quotes: write threads = 4");
}

TEST_CASE("spill_dir must be an absolute path", "[config]") {
  check_error(std::string("[proxy]\nspill_dir = \"spill\"\n").append(kProxyMinimal), "2:13",
              "spill_dir must be an absolute path, not \"spill\"");
}

TEST_CASE("a value of the wrong type names the type expected and the one found", "[config]") {
  check_error(std::string("[proxy]\nthreads = 2.5\n").append(kManagerMinimal), "2:11",
              "threads must be a whole number, not a decimal number");
  check_error(std::string("[proxy]\nthreads = true\n").append(kManagerMinimal), "2:11",
              "not true/false");
  check_error(std::string("[proxy]\naccess_log = 5\n").append(kManagerMinimal), "2:14",
              "access_log must be a string in quotes, not an integer");
  check_error(std::string("[metrics]\nlisten = 9100\n").append(kManagerMinimal), "2:10",
              "listen must be a string in quotes, not an integer");
  check_error(std::string(kManagerMinimal).append("queue_timeout = 5\n"), "4:17",
              "queue_timeout must be a duration in quotes with a unit, e.g. queue_timeout = "
              "\"5s\", not an integer");
  check_error(std::string(kManagerMinimal).append("max_body = 1024\n"), "4:12",
              "max_body must be a size in quotes, e.g. max_body = \"64KiB\"");
  check_error(std::string(kManagerMinimal).append("body_buffer = \"1GiB\"\n"), "4:15",
              "body_buffer must be at most 64MiB (each connection may hold this much), not 1GiB");
  check_error(std::string(kManagerMinimal).append("client_min_rate = 8\n"), "4:19",
              "client_min_rate must be a size in quotes");
  check_error(std::string(kManagerMinimal)
                  .append("slow_request_threshold = \"1s\"\nslow_request_signal = \"SIGKILL\"\n"),
              "5:23", "slow_request_signal must be \"SIGUSR1\"");
  check_error(std::string(kManagerMinimal).append("slow_request_signal = \"SIGUSR1\"\n"), "4:23",
              "slow_request_signal needs slow_request_threshold");
  check_error("[[pool]]\nname = 1\ncommand = [\"a\"]\n", "2:8",
              "name must be a string in quotes, not an integer");
  check_error(std::string(kManagerMinimal).append("cwd = [\"/srv\"]\n"), "4:7",
              "cwd must be a string in quotes, not an array");
}

TEST_CASE("a bad duration, size or address gives the parser's message at the value", "[config]") {
  check_error(std::string(kManagerMinimal).append("queue_timeout = \"5\"\n"), "4:17",
              "queue_timeout: duration \"5\" needs a unit");
  check_error(std::string(kManagerMinimal).append("stop_timeout = \"5 s\"\n"), "4:16",
              "stop_timeout: unknown unit \" s\"");
  check_error(std::string(kManagerMinimal).append("max_lifetime = \"1d\"\n"), "4:16",
              "max_lifetime: unknown unit \"d\"");
  check_error(std::string(kManagerMinimal).append("idle_timeout = \"3000000h\"\n"), "4:16",
              "idle_timeout: duration \"3000000h\" is too large: at most 8760h (a year)");
  check_error(std::string(kManagerMinimal).append("restart_backoff = [\"1s\", \"8761h\"]\n"),
              "4:26", "restart_backoff[1]: duration \"8761h\" is too large");
  check_error(std::string(kManagerMinimal).append("max_rss = \"1Gb\"\n"), "4:11",
              "max_rss: unknown unit \"Gb\"");
  check_error(std::string(kManagerMinimal).append("max_body = \"-1\"\n"), "4:12",
              "max_body: bad size");
  check_error(std::string(kManagerMinimal).append("listen = \"127.0.0.1\"\n"), "4:10",
              "listen: address \"127.0.0.1\" needs a port");
  check_error(std::string(kManagerMinimal).append("listen = \"127.0.0.1:99999\"\n"), "4:10",
              "out of range 1-65535");
  check_error(std::string("[metrics]\nlisten = \"::1:9100\"\n").append(kManagerMinimal), "2:10",
              "put an IPv6 address in brackets");
  check_error(std::string(kManagerMinimal).append("shutdown_timeout = \"5s\"\n"), "4:1",
              "unknown key \"shutdown_timeout\" in [[pool]]");
}

TEST_CASE("timeouts and intervals must be longer than zero", "[config]") {
  for (const char* key : {"queue_timeout", "client_timeout", "connect_timeout", "request_timeout",
                          "stop_timeout", "ready_timeout"}) {
    INFO(key);
    const std::string line = std::string(key) + " = \"0s\"\n";
    check_error(std::string(kManagerMinimal).append(line), "4:" + std::to_string(strlen(key) + 4),
                std::string(key) + " must be longer than 0");
  }
  check_error(std::string("[manager]\nshutdown_timeout = \"0\"\n").append(kManagerMinimal), "2:20",
              "shutdown_timeout must be longer than 0, e.g. \"30s\"");
  check_error(std::string(kProxyMinimal).append("discover_interval = \"0ms\"\n"), "5:1",
              "discover_interval only applies with discover", Mode::proxy);
  check_error(R"([[pool]]
name = "k8s"
listen = "127.0.0.1:4000"
discover = "dns:app.local:5000"
discover_interval = "0ms"
)",
              "5:21", "discover_interval must be longer than 0, e.g. \"5s\"", Mode::proxy);
}

TEST_CASE("zero means never for max_lifetime, max_requests, max_rss and max_body", "[config]") {
  const scgi::Config config =
      config_of(std::string(kManagerMinimal)
                    .append("max_lifetime = \"0s\"\nmax_requests = 0\nmax_rss = \"0\"\n"
                            "max_body = \"0B\"\n"));
  CHECK(config.pools[0].max_lifetime == Milliseconds(0));
}

TEST_CASE("integers out of range are refused, negative or too big", "[config]") {
  check_error(std::string("[proxy]\nthreads = -1\n").append(kManagerMinimal), "2:11",
              "threads cannot be negative (-1)");
  check_error(std::string("[proxy]\nthreads = 5000\n").append(kManagerMinimal), "2:11",
              "threads must be at most 1024, not 5000");
  check_error(std::string(kManagerMinimal).append("concurrency = 0\n"), "4:15",
              "concurrency must be at least 1, not 0");
  check_error(std::string(kManagerMinimal).append("concurrency = 4294967296\n"), "4:15",
              "concurrency must be at most 1000000");
  check_error(std::string(kManagerMinimal).append("queue_size = -5\n"), "4:14",
              "queue_size cannot be negative");
  check_error(std::string(kManagerMinimal).append("max_requests = -1\n"), "4:16",
              "max_requests cannot be negative");
  check_error(std::string(kManagerMinimal).append("workers = 0\n"), "4:11",
              "workers must be at least 1, not 0");
  check_error(std::string(kManagerMinimal).append("workers = 100000\n"), "4:11",
              "workers must be at most 4096");
  check_error(std::string(kManagerMinimal).append("min_workers = -1\nmax_workers = 2\n"), "4:15",
              "min_workers cannot be negative");
}

TEST_CASE("max_header must hold a valid header and not be absurdly large", "[config]") {
  check_error(std::string(kManagerMinimal).append("max_header = \"16\"\n"), "4:14",
              "max_header must be between 24 bytes");
  check_error(std::string(kManagerMinimal).append("max_header = \"64MiB\"\n"), "4:14",
              "and 16MiB (each connection holds this much), not 64MiB");
  CHECK(config_of(std::string(kManagerMinimal).append("max_header = \"24\"\n"))
            .pools[0]
            .max_header_bytes == 24);
}

TEST_CASE("a string with a NUL character is refused", "[config]") {
  check_error(std::string(kManagerMinimal).append("user = \"a\\u0000b\"\n"), "4:8",
              "must not contain a NUL character");
}

// ---------------------------------------------------------------------------
// Pool names and sockets used twice

TEST_CASE("a pool name outside [a-z0-9_-] is refused with a spelling that works", "[config]") {
  check_error("[[pool]]\nname = \"My App\"\ncommand = [\"a\"]\n", "2:8",
              "pool name \"My App\" may only contain a-z, 0-9, \"_\" and \"-\": e.g. name = "
              "\"my-app\"");
  check_error("[[pool]]\nname = \"\"\ncommand = [\"a\"]\n", "2:8", "may only contain");
  check_error("[[pool]]\nname = \"app.v2\"\ncommand = [\"a\"]\n", "2:8", "\"app-v2\"");
}

TEST_CASE("a pool without a name is refused at its header", "[config]") {
  check_error("[[pool]]\ncommand = [\"a\"]\n", "1:1", "this [[pool]] needs a name");
  const std::vector<std::string> errors = errors_of("[[pool]]\n", Mode::manager);
  INFO(joined(errors));
  REQUIRE(errors.size() == 2);
  CHECK_THAT(errors[0], StartsWith("t.toml:1:1: this [[pool]] needs a name"));
  CHECK_THAT(errors[1], StartsWith("t.toml:1:1: this pool has nothing to run or balance"));
}

TEST_CASE("two pools with one name are refused at the second", "[config]") {
  check_error(R"([[pool]]
name = "app"
command = ["a"]
[[pool]]
name = "app"
command = ["b"]
)",
              "5:8", "pool name \"app\" is already used by the pool at line 1");
}

TEST_CASE("two pools on one listen address are refused at the second", "[config]") {
  check_error(R"([[pool]]
name = "a"
listen = "127.0.0.1:4000"
command = ["a"]
[[pool]]
name = "b"
listen = "127.0.0.1:4000"
command = ["b"]
)",
              "7:10",
              "address \"127.0.0.1:4000\" is already used by pool \"a\" (line 3): give each its "
              "own address");
  check_error(R"([[pool]]
name = "a"
listen = "unix:/run/a.sock"
command = ["a"]
[[pool]]
name = "b"
listen = "unix:/run/a.sock"
command = ["b"]
)",
              "7:10", "already used by pool \"a\"");
}

TEST_CASE("a listen address that metrics or the control socket use is refused", "[config]") {
  check_error(R"([metrics]
listen = "127.0.0.1:4000"
[[pool]]
name = "a"
listen = "127.0.0.1:4000"
command = ["a"]
)",
              "5:10", "already used by [metrics] listen (line 2)");
  // Whichever comes later in the file is the one reported.
  check_error(R"([[pool]]
name = "a"
listen = "127.0.0.1:9100"
command = ["a"]
[metrics]
listen = "127.0.0.1:9100"
)",
              "6:10", "already used by pool \"a\" (line 3)");
  check_error(R"([manager]
control_socket = "/run/scgi/scgi.sock"
[[pool]]
name = "a"
listen = "unix:/run/scgi/scgi.sock"
command = ["a"]
)",
              "5:10", "already used by [manager] control_socket (line 2)");
}

TEST_CASE("a wildcard address overlaps every address on its port", "[config]") {
  check_error(R"([[pool]]
name = "a"
listen = "127.0.0.1:4000"
command = ["a"]
[[pool]]
name = "b"
listen = "0.0.0.0:4000"
command = ["b"]
)",
              "7:10",
              "address \"0.0.0.0:4000\" overlaps \"127.0.0.1:4000\" of pool \"a\" (line 3): a "
              "wildcard address takes the port on every interface");
  check_error(R"([[pool]]
name = "a"
listen = "[::]:4000"
command = ["a"]
[[pool]]
name = "b"
listen = "127.0.0.1:4000"
command = ["b"]
)",
              "7:10", "overlaps \"[::]:4000\"");
  check_error(R"([[pool]]
name = "a"
listen = "[0::0]:4000"
command = ["a"]
[[pool]]
name = "b"
listen = "[::]:4000"
command = ["b"]
)",
              "7:10", "address \"[::]:4000\" is already used by pool \"a\" (line 3)");
}

TEST_CASE("different ports, families or hosts do not clash", "[config]") {
  config_of(R"([metrics]
listen = "127.0.0.1:9100"
[[pool]]
name = "a"
listen = "0.0.0.0:4000"
command = ["a"]
[[pool]]
name = "b"
listen = "[::1]:4000"
command = ["b"]
[[pool]]
name = "c"
listen = "127.0.0.1:4001"
command = ["c"]
[[pool]]
name = "d"
listen = "127.0.0.2:4001"
command = ["d"]
)");
}

// ---------------------------------------------------------------------------
// Where a pool's backends come from

TEST_CASE("a pool with none of command, backends and discover says what to add", "[config]") {
  check_error("[[pool]]\nname = \"app\"\n", "1:1",
              "pool \"app\" has nothing to run or balance: add command = ");
  check_error("[[pool]]\nname = \"app\"\nlisten = \"127.0.0.1:4000\"\n", "1:1",
              "pool \"app\" has nothing to balance: add backends = ", Mode::proxy);
}

TEST_CASE("a pool with two of command, backends and discover is refused at the second",
          "[config]") {
  check_error(R"([[pool]]
name = "app"
listen = "127.0.0.1:4000"
backends = ["127.0.0.1:5000"]
command = ["a"]
)",
              "5:1",
              "a pool takes only one of command, backends and discover, and this one already has "
              "backends");
  const std::vector<std::string> errors = errors_of(R"([[pool]]
name = "app"
listen = "127.0.0.1:4000"
discover = "dns:app.local:5000"
backends = ["127.0.0.1:5000"]
)",
                                                    Mode::proxy);
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], StartsWith("t.toml:5:1: ") && Contains("already has discover"));
}

TEST_CASE("command must be a non-empty array of strings with a program first", "[config]") {
  check_error("[[pool]]\nname = \"a\"\ncommand = \"python3 app.py\"\n", "3:11",
              "command must be an array, not a string: it runs without a shell");
  check_error("[[pool]]\nname = \"a\"\ncommand = 5\n", "3:11",
              "command must be an array of strings");
  check_error("[[pool]]\nname = \"a\"\ncommand = []\n", "3:11", "command must not be empty");
  check_error("[[pool]]\nname = \"a\"\ncommand = [\"app\", 8000]\n", "3:19",
              "command[1] must be a string in quotes, not an integer");
  check_error("[[pool]]\nname = \"a\"\ncommand = [\"\", \"app.py\"]\n", "3:12",
              "the program, the first element of command, must not be empty");
}

TEST_CASE("the file of the command need not exist when checking", "[config]") {
  config_of("[[pool]]\nname = \"a\"\ncommand = [\"/nonexistent/worker\", \"x.py\"]\n");
}

TEST_CASE("backends must be a non-empty array of distinct addresses", "[config]") {
  const std::string head = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:4000\"\n";
  check_error(head + "backends = []\n", "4:12", "backends must be a non-empty array");
  check_error(head + "backends = \"127.0.0.1:5000\"\n", "4:12",
              "backends must be a non-empty array of addresses, e.g. backends = "
              "[\"127.0.0.1:5001\", \"unix:/run/app.sock\"], not a string");
  check_error(head + "backends = [\"127.0.0.1:5000\", 5001]\n", "4:31",
              "backends[1] must be an address in quotes, not an integer");
  check_error(head + "backends = [\"127.0.0.1:5000\", \"localhost\"]\n", "4:31",
              "backends[1]: address \"localhost\" needs a port");
  check_error(head + "backends = [\"127.0.0.1:5000\", \"127.0.0.1:5000\"]\n", "4:31",
              "backend \"127.0.0.1:5000\" is listed twice in this pool: remove one");
}

TEST_CASE("a backend that is this file's own listen address would loop", "[config]") {
  check_error(R"([[pool]]
name = "a"
listen = "127.0.0.1:4000"
backends = ["127.0.0.1:5000", "127.0.0.1:4000"]
)",
              "4:31",
              "backend \"127.0.0.1:4000\" is pool \"a\"'s own address (line 3): requests would "
              "loop back");
  check_error(R"([[pool]]
name = "a"
listen = "0.0.0.0:4000"
backends = ["127.0.0.1:5000"]
[[pool]]
name = "b"
listen = "127.0.0.1:4001"
backends = ["127.0.0.1:4000"]
)",
              "8:13", "is pool \"a\"'s own address (line 3)", Mode::proxy);
}

TEST_CASE("a backends pool in scgi-manager needs listen", "[config]") {
  check_error("[[pool]]\nname = \"a\"\nbackends = [\"127.0.0.1:5000\"]\n", "3:1",
              "pool \"a\" has backends but no listen address: nothing would send it requests");
}

TEST_CASE("worker keys in a pool without command are refused", "[config]") {
  const std::string head = std::string(kProxyMinimal);
  for (const char* line :
       {"workers = 2", "min_workers = 1", "max_workers = 2", "socket = \"port\"", "cwd = \"/\"",
        "env = {}", "user = \"root\"", "group = \"root\"", "stop_timeout = \"1s\"",
        "restart_backoff = [\"1s\", \"2s\"]", "ready_timeout = \"1s\"", "max_requests = 5",
        "max_lifetime = \"1h\"", "max_rss = \"1GiB\""}) {
    INFO(line);
    const std::string key = std::string(line).substr(0, std::string(line).find(' '));
    check_error(head + line + "\n", "5:1",
                key +
                    " only applies to a pool that runs its workers with command; this pool "
                    "uses backends: remove " +
                    key);
    check_error(head + line + "\n", "5:1", key + " only applies", Mode::proxy);
  }
}

// ---------------------------------------------------------------------------
// Worker counts

TEST_CASE("workers together with min_workers or max_workers is refused", "[config]") {
  check_error(
      std::string(kManagerMinimal).append("workers = 4\nmin_workers = 2\nmax_workers = 8\n"), "5:1",
      "workers and min_workers/max_workers exclude each other");
  check_error(std::string(kManagerMinimal).append("max_workers = 8\nworkers = 4\n"), "4:1",
              "workers and min_workers/max_workers exclude each other");
}

TEST_CASE("only one of min_workers and max_workers is refused", "[config]") {
  check_error(std::string(kManagerMinimal).append("min_workers = 2\n"), "4:1",
              "min_workers needs max_workers too");
  check_error(std::string(kManagerMinimal).append("max_workers = 8\n"), "4:1",
              "max_workers needs min_workers too");
}

TEST_CASE("min_workers above max_workers, or max_workers 0, is refused", "[config]") {
  check_error(std::string(kManagerMinimal).append("min_workers = 8\nmax_workers = 4\n"), "4:15",
              "min_workers (8) is more than max_workers (4)");
  check_error(std::string(kManagerMinimal).append("min_workers = 0\nmax_workers = 0\n"), "5:15",
              "max_workers must be at least 1, not 0");
}

TEST_CASE("no pool runs more workers than [manager] max_workers_per_pool", "[config]") {
  CHECK(config_of(kManagerMinimal).manager.max_workers_per_pool == 1024);
  CHECK(config_of(std::string(kManagerMinimal).append("workers = 1024\n")).pools[0].max_workers ==
        1024);
  check_error(std::string(kManagerMinimal).append("workers = 1025\n"), "4:11",
              "workers = 1025 is more than [manager] max_workers_per_pool (1024): lower it, or "
              "raise max_workers_per_pool (at most 4096)");
  check_error(std::string(kManagerMinimal).append("min_workers = 1\nmax_workers = 2000\n"), "5:15",
              "max_workers = 2000 is more than [manager] max_workers_per_pool (1024)");
  // The limit is raised, or lowered, in [manager], wherever that stands in the file.
  const std::string raised =
      std::string(kManagerMinimal)
          .append("workers = 2000\n[manager]\nmax_workers_per_pool = 2000\n");
  CHECK(config_of(raised).pools[0].max_workers == 2000);
  check_error(
      std::string("[manager]\nmax_workers_per_pool = 2\n").append(kManagerMinimal), "4:8",
      "pool \"app\" runs 4 workers by default, more than [manager] max_workers_per_pool (2)");
  check_error("[manager]\nmax_workers_per_pool = 5000\n" + std::string(kManagerMinimal), "2:24",
              "max_workers_per_pool must be at most 4096");
  check_error("[manager]\nmax_workers_per_pool = 0\n" + std::string(kManagerMinimal), "2:24",
              "max_workers_per_pool must be at least 1");
}

TEST_CASE("idle_timeout sets how soon a dynamic pool shrinks, and only there", "[config]") {
  CHECK(config_of(kManagerMinimal).pools[0].idle_timeout == Milliseconds(30'000));
  const auto config =
      config_of(std::string(kManagerMinimal)
                    .append("min_workers = 1\nmax_workers = 4\nidle_timeout = \"5s\"\n"));
  CHECK(config.pools[0].idle_timeout == Milliseconds(5'000));
  check_error(std::string(kManagerMinimal).append("workers = 2\nidle_timeout = \"5s\"\n"), "5:1",
              "idle_timeout only applies to a pool that grows and shrinks");
  check_error(std::string(kManagerMinimal)
                  .append("min_workers = 1\nmax_workers = 4\nidle_timeout = \"0s\"\n"),
              "6:16", "idle_timeout must be longer than 0");
}

// ---------------------------------------------------------------------------
// Worker settings

TEST_CASE("restart_backoff is exactly two durations, the first > 0 and <= the ceiling",
          "[config]") {
  check_error(std::string(kManagerMinimal).append("restart_backoff = \"1s\"\n"), "4:19",
              "restart_backoff must be two durations, the first delay and the ceiling, e.g. "
              "restart_backoff = [\"100ms\", \"30s\"], not a string");
  check_error(std::string(kManagerMinimal).append("restart_backoff = [\"1s\"]\n"), "4:19",
              "not 1 of them");
  check_error(std::string(kManagerMinimal).append("restart_backoff = [\"1s\", \"2s\", \"3s\"]\n"),
              "4:19", "not 3 of them");
  check_error(std::string(kManagerMinimal).append("restart_backoff = [\"1s\", 30]\n"), "4:26",
              "restart_backoff[1] must be a duration in quotes, e.g. \"30s\", not an integer");
  check_error(std::string(kManagerMinimal).append("restart_backoff = [\"1x\", \"30s\"]\n"), "4:20",
              "restart_backoff[0]: unknown unit \"x\"");
  check_error(std::string(kManagerMinimal).append("restart_backoff = [\"0s\", \"30s\"]\n"), "4:20",
              "the first restart delay must be longer than 0");
  check_error(std::string(kManagerMinimal).append("restart_backoff = [\"1m\", \"30s\"]\n"), "4:20",
              "the first restart delay (1m) is longer than the ceiling (30s): swap them");
  CHECK(config_of(std::string(kManagerMinimal).append("restart_backoff = [\"5s\", \"5s\"]\n"))
            .pools[0]
            .restart_backoff.first == Milliseconds(5'000));
}

TEST_CASE("env is a table of strings, without the names the manager sets", "[config]") {
  check_error(std::string(kManagerMinimal).append("env = [\"A=b\"]\n"), "4:7",
              "env must be a table of strings, e.g. env = { APP_ENV = \"production\" }, not an "
              "array");
  check_error(std::string(kManagerMinimal).append("env = { PORT = 8000 }\n"), "4:16",
              "env PORT must be a string in quotes, not an integer");
  check_error(std::string(kManagerMinimal).append("env = { LISTEN_FDS = \"3\" }\n"), "4:9",
              "env LISTEN_FDS: LISTEN_* and SCGI_* are set by scgi-manager");
  check_error(std::string(kManagerMinimal).append("env = { SCGI_POOL = \"x\" }\n"), "4:9",
              "env SCGI_POOL: LISTEN_* and SCGI_*");
  check_error(std::string(kManagerMinimal).append("env = { \"A=B\" = \"x\" }\n"), "4:9",
              "env name \"A=B\" is not usable");
  check_error(std::string(kManagerMinimal).append("[pool.env]\nA = \"1\"\nB = 2\n"), "6:5",
              "env B must be a string");
}

TEST_CASE("user and group must exist on this machine", "[config]") {
  check_error(std::string(kManagerMinimal).append("user = \"no-such-user-scgi\"\n"), "4:8",
              "no user \"no-such-user-scgi\" on this machine: create it (useradd --system "
              "no-such-user-scgi) or fix the name");
  check_error(std::string(kManagerMinimal).append("group = \"no-such-group-scgi\"\n"), "4:9",
              "no group \"no-such-group-scgi\" on this machine");
  check_error(
      std::string("[manager]\ncontrol_group = \"no-such-group-scgi\"\n").append(kManagerMinimal),
      "2:17", "no group \"no-such-group-scgi\"");
  config_of(std::string(kManagerMinimal).append("user = \"\"\ngroup = \"\"\n"));
}

TEST_CASE("under a root manager a pool names its user or allows root", "[config]") {
  using scgi::RunsAs;
  const auto errors_as_root = [](const std::string& text) {
    std::vector<std::string> out;
    for (const scgi::ConfigError& error :
         scgi::parse_config(text, "t.toml", Mode::manager, RunsAs::root).errors())
      out.push_back(error.to_string());
    return out;
  };
  const std::string pool(kManagerMinimal);
  SECTION("no user: refused, at command, saying what to do") {
    const auto errors = errors_as_root(pool);
    INFO(joined(errors));
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0], StartsWith("t.toml:3:1: pool \"app\" has no user, and scgi-manager "
                                     "runs as root: its workers would run as root; set user"));
    CHECK_THAT(errors[0], Contains("or allow_root = true"));
  }
  SECTION("user = \"root\": refused at user") {
    const auto errors = errors_as_root(pool + "user = \"root\"\n");
    INFO(joined(errors));
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0], StartsWith("t.toml:4:1: user = \"root\" runs the workers of pool "
                                     "\"app\" as root"));
  }
  SECTION("group without user: refused at group, even with allow_root") {
    for (const std::string extra : {"", "allow_root = true\n"}) {
      const auto errors = errors_as_root(pool + "group = \"nogroup\"\n" + extra);
      INFO(joined(errors));
      REQUIRE(errors.size() == 1);
      CHECK_THAT(errors[0], StartsWith("t.toml:4:1: pool \"app\" sets group but not user: its "
                                       "workers would keep uid 0"));
    }
  }
  SECTION("a user, or allow_root, passes") {
    CHECK(errors_as_root(pool + "user = \"nobody\"\n").empty());
    CHECK(errors_as_root(pool + "user = \"nobody\"\ngroup = \"nogroup\"\n").empty());
    CHECK(errors_as_root(pool + "allow_root = true\n").empty());
    CHECK(
        errors_as_root(pool + "user = \"root\"\ngroup = \"nogroup\"\nallow_root = true\n").empty());
  }
  SECTION("a manager that is not root runs its pools as itself: it cannot switch") {
    CHECK(config_of(pool).pools[0].allow_root == false);
    // Its own user and group name nothing to switch to.
    const std::string own_user = ::getpwuid(::geteuid())->pw_name;
    const std::string own_group = ::getgrgid(::getegid())->gr_name;
    CHECK(config_of(pool + "user = \"" + own_user + "\"\ngroup = \"" + own_group + "\"\n")
              .pools[0]
              .group == own_group);
    // Another one would fail every start: the check says so.
    const std::string other_group = own_group == "nogroup" ? "root" : "nogroup";
    check_error(pool + "group = \"" + other_group + "\"\n", "4:1",
                "group = \"" + other_group +
                    "\" needs scgi-manager to run as root to switch its workers to it (it runs as "
                    "gid " +
                    std::to_string(::getegid()) + "): run it as root, or remove group");
    const std::string other_user = ::geteuid() == 65534 ? "root" : "nobody";
    check_error(pool + "user = \"" + other_user + "\"\n", "4:1",
                "user = \"" + other_user +
                    "\" needs scgi-manager to run as root to switch its workers to it (it runs as "
                    "uid " +
                    std::to_string(::geteuid()) +
                    "): run it as root, or remove user to run them "
                    "as uid " +
                    std::to_string(::geteuid()));
  }
  SECTION("a pool of backends is not concerned; allow_root is a worker key") {
    CHECK(errors_as_root(std::string(kManagerMinimal)
                             .replace(pool.find("command"), 17,
                                      "listen = \"127.0.0.1:4000\"\n"
                                      "backends = [\"127.0.0.1:4001\"]"))
              .empty());
  }
  check_error(pool + "allow_root = \"yes\"\n", "4:14",
              "allow_root must be true or false (without quotes), not a string");
}

TEST_CASE("cwd must be absolute", "[config]") {
  check_error(std::string(kManagerMinimal).append("cwd = \"srv/app\"\n"), "4:7",
              "cwd must be an absolute path, starting with \"/\", not \"srv/app\"");
}

TEST_CASE("socket is inherit, port or unix", "[config]") {
  check_error(std::string(kManagerMinimal).append("socket = \"tcp\"\n"), "4:10",
              "socket must be \"inherit\" (the manager passes fd 3), \"port\" ({port} in command) "
              "or \"unix\" ({socket} in command), not \"tcp\"");
}

TEST_CASE("{port} and {socket} appear exactly with their socket mode", "[config]") {
  check_error("[[pool]]\nname = \"a\"\ncommand = [\"app\", \"--port={port}\"]\n", "3:19",
              "{port} is only replaced when socket = \"port\", and this pool has socket = "
              "\"inherit\": set socket to match, or remove the placeholder");
  check_error("[[pool]]\nname = \"a\"\ncommand = [\"app\"]\nenv = { SOCK = \"{socket}\" }\n",
              "4:16", "{socket} is only replaced when socket = \"unix\"");
  check_error(
      "[[pool]]\nname = \"a\"\ncommand = [\"app\", \"{socket}\", \"{port}\"]\nsocket = \"port\"\n",
      "3:19",
      "{socket} is only replaced when socket = \"unix\", and this pool has socket = \"port\": use "
      "the placeholder of this socket mode");
  check_error("[[pool]]\nname = \"a\"\ncommand = [\"app\"]\nsocket = \"port\"\n", "4:10",
              "socket = \"port\" but neither command nor env contains {port}");
  check_error("[[pool]]\nname = \"a\"\ncommand = [\"app\"]\nsocket = \"unix\"\n", "4:10",
              "socket = \"unix\" but neither command nor env contains {socket}");
  config_of(
      "[[pool]]\nname = \"a\"\ncommand = [\"app\"]\nsocket = \"port\"\nenv = { P = \"{port}\" }\n");
}

TEST_CASE("a misspelt placeholder is pointed out", "[config]") {
  check_error(
      "[[pool]]\nname = \"a\"\ncommand = [\"app\", \"{prot}\", \"{port}\"]\nsocket = \"port\"\n",
      "3:19", "{prot} is not a placeholder: did you mean {port}?");
  check_error(
      "[[pool]]\nname = \"a\"\ncommand = [\"app\", \"{sockt}\", \"{socket}\"]\nsocket = \"unix\"\n",
      "3:19", "did you mean {socket}?");
  // Braces that are not a placeholder pass.
  config_of("[[pool]]\nname = \"a\"\ncommand = [\"app\", \"{\\\"a\\\": 1}\", \"{asctime}\"]\n");
}

// ---------------------------------------------------------------------------
// Discovery

TEST_CASE("discover is dns:NAME:PORT with a DNS name", "[config]") {
  const std::string head = "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:4000\"\n";
  check_error(head + "discover = \"app.local:5000\"\n", "4:12",
              "discover must be written \"dns:NAME:PORT\", e.g. "
              "\"dns:app.default.svc.cluster.local:5000\"",
              Mode::proxy);
  check_error(head + "discover = \"dns:app.local\"\n", "4:12",
              "discover: address \"app.local\" needs a port", Mode::proxy);
  check_error(head + "discover = \"dns:app.local:0\"\n", "4:12", "out of range", Mode::proxy);
  check_error(head + "discover = \"dns:10.0.0.1:5000\"\n", "4:12",
              "discover needs a DNS name, not the IP address \"10.0.0.1\": list fixed addresses "
              "in backends instead",
              Mode::proxy);
  check_error(head + "discover = \"dns:[::1]:5000\"\n", "4:12", "needs a DNS name", Mode::proxy);
  check_error(head + "discover = \"dns:unix:/run/a.sock\"\n", "4:12",
              "a Unix socket cannot come from DNS", Mode::proxy);
}

TEST_CASE("resolver is an IP address with its port", "[config]") {
  const std::string head =
      "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:4000\"\ndiscover = \"dns:app.local:5000\"\n";
  check_error(head + "resolver = \"dns.local:53\"\n", "5:12",
              "resolver must be an IP address with its port, e.g. \"127.0.0.1:53\"", Mode::proxy);
  check_error(head + "resolver = \"unix:/run/dns\"\n", "5:12", "resolver must be an IP address",
              Mode::proxy);
  check_error(head + "resolver = \"127.0.0.1\"\n", "5:12",
              "resolver: address \"127.0.0.1\" needs a port", Mode::proxy);
}

TEST_CASE("discover_interval is at least 100ms", "[config]") {
  const std::string head =
      "[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:4000\"\ndiscover = \"dns:app.local:5000\"\n";
  check_error(head + "discover_interval = \"50ms\"\n", "5:21",
              "discover_interval must be at least 100ms (each resolution asks the DNS server), "
              "not 50ms",
              Mode::proxy);
  auto result = scgi::parse_config(head + "discover_interval = \"100ms\"\n", "t.toml", Mode::proxy);
  REQUIRE(result);
  CHECK(result.config().pools[0].discover_interval == Milliseconds(100));
}

TEST_CASE("resolver and discover_interval without discover are refused", "[config]") {
  check_error(std::string(kProxyMinimal).append("resolver = \"127.0.0.1:53\"\n"), "5:1",
              "resolver only applies with discover: remove it, or add discover", Mode::proxy);
}

// ---------------------------------------------------------------------------
// What each binary accepts

TEST_CASE("scgi-manager refuses discover, resolver and discover_interval", "[config]") {
  const std::vector<std::string> errors = errors_of(R"([[pool]]
name = "a"
listen = "127.0.0.1:4000"
discover = "dns:app.local:5000"
discover_interval = "5s"
resolver = "127.0.0.1:53"
)",
                                                    Mode::manager);
  INFO(joined(errors));
  REQUIRE(errors.size() == 3);
  CHECK_THAT(errors[0], StartsWith("t.toml:4:1: discover is for scgi-proxy only: scgi-manager "
                                   "does not follow DNS; list fixed addresses in backends"));
  CHECK_THAT(errors[1], StartsWith("t.toml:5:1: discover_interval is for scgi-proxy only"));
  CHECK_THAT(errors[2], StartsWith("t.toml:6:1: resolver is for scgi-proxy only"));
}

TEST_CASE("scgi-proxy refuses command, which needs scgi-manager", "[config]") {
  check_error("[[pool]]\nname = \"a\"\nlisten = \"127.0.0.1:4000\"\ncommand = [\"app\"]\n", "4:1",
              "command needs scgi-manager: scgi-proxy only balances servers it does not run; use "
              "backends",
              Mode::proxy);
}

TEST_CASE("scgi-proxy refuses a pool without listen", "[config]") {
  check_error("[[pool]]\nname = \"a\"\nbackends = [\"127.0.0.1:5000\"]\n", "1:1",
              "pool \"a\" has no listen address: scgi-proxy balances only what arrives there; add "
              "e.g. listen = \"127.0.0.1:4000\"",
              Mode::proxy);
  check_error("[[pool]]\nname = \"a\"\nlisten = \"\"\nbackends = [\"127.0.0.1:5000\"]\n", "1:1",
              "has no listen address", Mode::proxy);
}

TEST_CASE("scgi-proxy refuses [manager]", "[config]") {
  check_error(std::string("[manager]\nlog_dir = \"/var/log\"\n").append(kProxyMinimal), "1:1",
              "[manager] is for scgi-manager: scgi-proxy runs no workers and has no control "
              "socket; remove this table, or run the file with scgi-manager",
              Mode::proxy);
}

TEST_CASE("the control socket must be a usable Unix socket path", "[config]") {
  check_error(std::string("[manager]\ncontrol_socket = \"/run/scgi/")
                  .append(std::string(100, 'x'))
                  .append(".sock\"\n")
                  .append(kManagerMinimal),
              "2:18",
              "control_socket is 115 bytes long, and a Unix socket path takes at most 107: choose "
              "a shorter path");
  check_error(std::string("[manager]\ncontrol_socket = \"\"\n").append(kManagerMinimal), "2:18",
              "control_socket must not be empty");
}

TEST_CASE("metrics listen must be TCP", "[config]") {
  check_error(std::string("[metrics]\nlisten = \"unix:/run/m.sock\"\n").append(kManagerMinimal),
              "2:10", "metrics listen must be a TCP address such as \"127.0.0.1:9100\"");
}

// ---------------------------------------------------------------------------
// Everything at once

TEST_CASE("every error of a file is reported, in file order", "[config]") {
  const std::vector<std::string> errors = errors_of(R"([manager]
shutdown_timeout = "0s"

[proxy]
threads = -2

[[pool]]
name = "Bad Name"
listen = "127.0.0.1:4000"
command = ["app", "{port}"]
wokers = 4
restart_backoff = ["1m", "1s"]

[[pool]]
name = "b"
listen = "127.0.0.1:4000"
backends = ["nowhere"]
min_workers = 2
)",
                                                    Mode::manager);
  INFO(joined(errors));
  REQUIRE(errors.size() == 9);
  CHECK_THAT(errors[0], StartsWith("t.toml:2:20: shutdown_timeout must be longer than 0"));
  CHECK_THAT(errors[1], StartsWith("t.toml:5:11: threads cannot be negative"));
  CHECK_THAT(errors[2], StartsWith("t.toml:8:8: pool name \"Bad Name\""));
  CHECK_THAT(errors[3], StartsWith("t.toml:10:19: {port} is only replaced"));
  CHECK_THAT(errors[4], StartsWith("t.toml:11:1: unknown key \"wokers\""));
  CHECK_THAT(errors[5], StartsWith("t.toml:12:20: the first restart delay (1m)"));
  CHECK_THAT(errors[6], StartsWith("t.toml:16:10: address \"127.0.0.1:4000\" is already used"));
  CHECK_THAT(errors[7], StartsWith("t.toml:17:13: backends[0]: address \"nowhere\" needs a port"));
  CHECK_THAT(errors[8], StartsWith("t.toml:18:1: min_workers only applies to a pool that runs"));
}

TEST_CASE("the same file checked by both binaries gets each one's errors", "[config]") {
  const std::string text = R"([manager]
log_dir = ""
[[pool]]
name = "app"
listen = "127.0.0.1:4000"
command = ["app"]
[[pool]]
name = "k8s"
listen = "127.0.0.1:4001"
discover = "dns:app.local:5000"
)";
  const std::vector<std::string> as_manager = errors_of(text, Mode::manager);
  INFO(joined(as_manager));
  REQUIRE(as_manager.size() == 1);
  CHECK_THAT(as_manager[0], StartsWith("t.toml:10:1: discover is for scgi-proxy only"));
  const std::vector<std::string> as_proxy = errors_of(text, Mode::proxy);
  INFO(joined(as_proxy));
  REQUIRE(as_proxy.size() == 2);
  CHECK_THAT(as_proxy[0], StartsWith("t.toml:1:1: [manager] is for scgi-manager"));
  CHECK_THAT(as_proxy[1], StartsWith("t.toml:6:1: command needs scgi-manager"));
}

TEST_CASE("a Unix front door is 0660 unless listen_mode says otherwise, and takes listen_group",
          "[config]") {
  constexpr std::string_view kUnix = R"([[pool]]
name = "app"
listen = "unix:/run/scgi/app.sock"
backends = ["127.0.0.1:5000"]
)";
  const scgi::Config defaults = config_of(kUnix, Mode::proxy);
  CHECK(defaults.pools[0].listen_mode == 0660);
  CHECK(defaults.pools[0].listen_group.empty());
  const scgi::Config set = config_of(
      std::string(kUnix).append("listen_mode = \"0600\"\nlisten_group = \"root\"\n"), Mode::proxy);
  CHECK(set.pools[0].listen_mode == 0600);
  CHECK(set.pools[0].listen_group == "root");
  CHECK(config_of(std::string(kUnix).append("listen_mode = \"666\"\n"), Mode::proxy)
            .pools[0]
            .listen_mode == 0666);

  check_error(std::string(kUnix).append("listen_mode = \"0640x\"\n"), "5:15",
              "listen_mode must be an octal mode in quotes", Mode::proxy);
  check_error(std::string(kUnix).append("listen_mode = \"4660\"\n"), "5:15",
              "listen_mode must be an octal mode", Mode::proxy);
  check_error(std::string(kUnix).append("listen_mode = \"0060\"\n"), "5:15", "lets the owner in",
              Mode::proxy);
  check_error(std::string(kUnix).append("listen_group = \"no-such-group-scgi\"\n"), "5:16",
              "no group \"no-such-group-scgi\" on this machine", Mode::proxy);
  check_error(std::string(kProxyMinimal).append("listen_mode = \"0660\"\n"), "5:1",
              "listen_mode only applies to a Unix listen address", Mode::proxy);
  check_error(std::string(kManagerMinimal).append("listen_group = \"root\"\n"), "4:1",
              "listen_group only applies to a Unix listen address");
}
