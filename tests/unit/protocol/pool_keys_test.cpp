#include "scgi/pool_keys.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

using scgi::Mode;
using scgi::PoolConfig;
using scgi::PoolKey;
using scgi::PoolKind;

namespace {

std::string current_user() {
  const passwd* user = getpwuid(getuid());
  REQUIRE(user != nullptr);
  return user->pw_name;
}

std::string current_group() {
  const group* group = getgrgid(getgid());
  REQUIRE(group != nullptr);
  return group->gr_name;
}

// A valid value for every pool key but name, as a line of a [[pool]] table,
// each different from the key's default.
const std::map<std::string_view, std::string>& sample_lines() {
  static const std::map<std::string_view, std::string> lines{
      {"listen", "listen = \"unix:/tmp/scgi-pool-keys-test.sock\""},
      {"listen_mode", "listen_mode = \"0600\""},
      {"listen_group", "listen_group = \"" + current_group() + "\""},
      {"command", "command = [\"app\", \"{port}\"]"},
      {"socket", "socket = \"port\""},
      {"workers", "workers = 2"},
      {"min_workers", "min_workers = 1"},
      {"max_workers", "max_workers = 3"},
      {"concurrency", "concurrency = 2"},
      {"queue_size", "queue_size = 10"},
      {"queue_timeout", "queue_timeout = \"2s\""},
      {"client_timeout", "client_timeout = \"3s\""},
      {"connect_timeout", "connect_timeout = \"2s\""},
      {"request_timeout", "request_timeout = \"30s\""},
      {"max_header", "max_header = \"32KiB\""},
      {"max_body", "max_body = \"1MiB\""},
      {"body_buffer", "body_buffer = \"32KiB\""},
      {"response_buffer", "response_buffer = \"128KiB\""},
      {"response_spill", "response_spill = \"1MiB\""},
      {"client_min_rate", "client_min_rate = \"4KiB\""},
      {"queue_time", "queue_time = false"},
      {"keep_request_start", "keep_request_start = true"},
      {"create_traceparent", "create_traceparent = true"},
      {"max_requests", "max_requests = 100"},
      {"max_lifetime", "max_lifetime = \"1h\""},
      {"max_rss", "max_rss = \"512MiB\""},
      {"cwd", "cwd = \"/tmp\""},
      {"env", "env = { APP_ENV = \"test\" }"},
      {"user", "user = \"" + current_user() + "\""},
      {"group", "group = \"" + current_group() + "\""},
      {"allow_root", "allow_root = true"},
      {"stop_timeout", "stop_timeout = \"5s\""},
      {"restart_backoff", "restart_backoff = [\"200ms\", \"10s\"]"},
      {"ready_timeout", "ready_timeout = \"5s\""},
      {"idle_timeout", "idle_timeout = \"1m\""},
      {"slow_request_threshold", "slow_request_threshold = \"2s\""},
      {"slow_request_signal", "slow_request_signal = \"SIGUSR1\""},
      {"backends", "backends = [\"127.0.0.1:5001\"]"},
      {"discover", "discover = \"dns:app.example:5000\""},
      {"discover_interval", "discover_interval = \"10s\""},
      {"resolver", "resolver = \"127.0.0.1:53\""},
  };
  return lines;
}

const PoolKey& key_named(std::string_view name) {
  const auto keys = scgi::pool_keys();
  const auto found =
      std::find_if(keys.begin(), keys.end(), [&](const PoolKey& key) { return key.name == name; });
  REQUIRE(found != keys.end());
  return *found;
}

// One pool of `kind`, named `name`, with the sample line of each of `keys`.
// A key that a pool of this kind cannot go without is always written.
std::string pool_table(std::string_view name, PoolKind kind, std::vector<std::string_view> keys) {
  keys.push_back(scgi::kind_key(kind));
  if (kind == PoolKind::command) keys.push_back("socket");  // {port} is in the sample command
  // A signal needs a threshold to be sent at.
  if (std::find(keys.begin(), keys.end(), "slow_request_signal") != keys.end())
    keys.push_back("slow_request_threshold");
  if (kind != PoolKind::command) keys.push_back("listen");  // balanced, so it has a front door
  std::set<std::string_view> written;
  std::string text = "[[pool]]\nname = \"" + std::string(name) + "\"\n";
  for (std::string_view key : keys) {
    if (!written.insert(key).second) continue;
    std::string line = sample_lines().at(key);
    if (key == "listen")  // each pool its own socket
      line = "listen = \"unix:/tmp/scgi-pool-keys-test-" + std::string(name) + ".sock\"";
    text += line + "\n";
  }
  return text;
}

std::string error_text(const scgi::ConfigResult& result) {
  std::string out;
  for (const scgi::ConfigError& error : result.errors())
    out += error.to_string() + "\n";
  return out;
}

// Each kind of pool in each binary that runs it.
struct Setting {
  PoolKind kind;
  Mode mode;
};
constexpr Setting kSettings[] = {{PoolKind::command, Mode::manager},
                                 {PoolKind::backends, Mode::manager},
                                 {PoolKind::backends, Mode::proxy},
                                 {PoolKind::discover, Mode::proxy}};

// workers excludes min_workers and max_workers, and idle_timeout needs them.
bool for_a_dynamic_pool(std::string_view key) {
  return key == "min_workers" || key == "max_workers" || key == "idle_timeout";
}

}  // namespace

TEST_CASE("every pool key has one entry, and a sample value here", "[config][pool-keys]") {
  std::vector<std::string_view> names;
  for (const PoolKey& key : scgi::pool_keys()) {
    INFO(key.name);
    CHECK(std::count(names.begin(), names.end(), key.name) == 0);
    names.push_back(key.name);
    CHECK((key.same == nullptr) == (key.on_reload == scgi::OnReload::identifies));
    if (key.name != "name") CHECK(sample_lines().count(key.name) == 1);
  }
  for (const auto& [name, line] : sample_lines())
    CHECK(std::count(names.begin(), names.end(), name) == 1);
  CHECK(scgi::pool_key_names() == names);
}

TEST_CASE("pools with every key set are read, each key into the value the table compares",
          "[config][pool-keys]") {
  std::set<std::string_view> covered{"name"};
  for (const Setting& setting : kSettings) {
    // A command pool either has a fixed size or grows and shrinks: one of each.
    for (const bool dynamic : {false, true}) {
      if (dynamic && setting.kind != PoolKind::command) continue;
      std::vector<std::string_view> keys;
      for (const PoolKey& key : scgi::pool_keys())
        if (key.name != "name" && key.kinds.contains(setting.kind) &&
            (setting.kind != PoolKind::command || for_a_dynamic_pool(key.name) == dynamic))
          keys.push_back(key.name);
      const std::string text = pool_table("app", setting.kind, keys);
      INFO(text);
      const scgi::ConfigResult result = scgi::parse_config(text, "t.toml", setting.mode);
      INFO(error_text(result));
      REQUIRE(result);
      const PoolConfig& read = result.config().pools.at(0);
      CHECK(read.kind == setting.kind);
      for (std::string_view name : keys) {
        INFO(name);
        CHECK_FALSE(key_named(name).same(PoolConfig{}, read));
        covered.insert(name);
      }
    }
  }
  CHECK(covered.size() == scgi::pool_keys().size());
}

TEST_CASE("a key is refused in a pool of a kind the table does not give it",
          "[config][pool-keys]") {
  for (const PoolKey& key : scgi::pool_keys()) {
    for (const Setting& setting : kSettings) {
      if (key.kinds.contains(setting.kind)) continue;
      const std::string text = pool_table("app", setting.kind, {key.name});
      INFO(text);
      const scgi::ConfigResult result = scgi::parse_config(text, "t.toml", setting.mode);
      REQUIRE_FALSE(result);
      CHECK_THAT(error_text(result), Catch::Matchers::Contains(std::string(key.name)));
    }
  }
}

TEST_CASE("a key outside the table is unknown in [[pool]]", "[config][pool-keys]") {
  const std::string text = pool_table("app", PoolKind::command, {}) + "bananas = 1\n";
  const scgi::ConfigResult result = scgi::parse_config(text, "t.toml", Mode::manager);
  REQUIRE_FALSE(result);
  std::string allowed;
  for (std::string_view name : scgi::pool_key_names())
    allowed += (allowed.empty() ? "" : ", ") + std::string(name);
  CHECK(error_text(result) ==
        "t.toml:5:1: unknown key \"bananas\" in [[pool]]: the keys allowed here are " + allowed +
            "\n");
}

TEST_CASE("exactly command, socket, cwd, env, user and group roll the workers",
          "[config][pool-keys]") {
  std::vector<std::string_view> rolling;
  for (const PoolKey& key : scgi::pool_keys())
    if (key.on_reload == scgi::OnReload::rolls) rolling.push_back(key.name);
  CHECK(rolling ==
        std::vector<std::string_view>{"command", "socket", "cwd", "env", "user", "group"});
}

TEST_CASE("the keys only one kind of pool takes", "[config][pool-keys]") {
  CHECK(scgi::keys_only_for(PoolKind::discover) ==
        std::vector<std::string_view>{"discover", "discover_interval", "resolver"});
  CHECK(scgi::keys_only_for(PoolKind::backends) == std::vector<std::string_view>{"backends"});
  const auto worker_keys = scgi::keys_only_for(PoolKind::command);
  CHECK(worker_keys.front() == "command");
  CHECK(std::find(worker_keys.begin(), worker_keys.end(), "idle_timeout") != worker_keys.end());
  CHECK(std::find(worker_keys.begin(), worker_keys.end(), "concurrency") == worker_keys.end());
}
