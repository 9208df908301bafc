// Turns a configuration file into a Config: the top-level tables here, each
// [[pool]] in pool_reader.cpp, then the checks across the whole file (pool
// names and sockets used twice, backends that loop back). Every error is
// kept, so one run of --check shows them all.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <grp.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "config_reader.hpp"
#include "pool_reader.hpp"
#include "scgi/config.hpp"

namespace scgi {
namespace {

using detail::ConfigReader;
using detail::ErrorList;
using detail::quote;

constexpr std::uint32_t kMaxThreads = 1024;

// 4 or 6 for an IP literal, 0 for a host name; `bytes` gets the binary form.
int ip_family(const std::string& host, unsigned char (&bytes)[16]) {
  std::memset(bytes, 0, sizeof bytes);
  if (inet_pton(AF_INET, host.c_str(), bytes) == 1) return 4;
  if (inet_pton(AF_INET6, host.c_str(), bytes) == 1) return 6;
  return 0;
}

enum class Clash { none, same, overlap };

// Whether binding both addresses at once would fail: the same socket, or one
// a wildcard that takes the port on every interface ("::" covers IPv4 too).
Clash clash(const Address& a, const Address& b) {
  if (a.kind != b.kind) return Clash::none;
  if (a.is_unix()) return a.path == b.path ? Clash::same : Clash::none;
  if (a.port != b.port) return Clash::none;
  unsigned char a_bytes[16];
  unsigned char b_bytes[16];
  const int a_family = ip_family(a.host, a_bytes);
  const int b_family = ip_family(b.host, b_bytes);
  if (a_family == 0 && b_family == 0) return a.host == b.host ? Clash::same : Clash::none;
  if (a_family == b_family && std::memcmp(a_bytes, b_bytes, sizeof a_bytes) == 0)
    return Clash::same;  // perhaps spelt differently: "[::]" and "[0::0]"
  static constexpr unsigned char kZero[16] = {};
  const auto wildcard_covers = [&](int family, const unsigned char(&bytes)[16], int other) {
    return family != 0 && std::memcmp(bytes, kZero, sizeof kZero) == 0 &&
           (family == 6 || other != 6);
  };
  return wildcard_covers(a_family, a_bytes, b_family) ||
                 wildcard_covers(b_family, b_bytes, a_family)
             ? Clash::overlap
             : Clash::none;
}

// A socket this file binds (or connects to, for the control socket), for the
// checks across the whole file.
struct Endpoint {
  Address address;
  toml::source_position at;
  std::string owner;  // "pool \"app\"", "[metrics] listen"
};

class Loader {
 public:
  Loader(Mode mode, RunsAs runs_as, ErrorList& errors)
      : mode_(mode), runs_as_(runs_as), errors_(errors) {}

  Config load(const toml::table& root, std::string path);

 private:
  void read_manager(const toml::node& node, ManagerConfig& out);
  void read_proxy(const toml::node& node, ProxyConfig& out);
  void read_metrics(const toml::node& node, MetricsConfig& out);
  void read_pools(const toml::table& root, const toml::node& node, std::vector<PoolConfig>& out);

  const toml::table* as_section(const toml::node& node, std::string_view name);
  void check_names(const std::vector<PoolConfig>& pools);
  void check_endpoints();
  void check_backends(const std::vector<PoolConfig>& pools);
  void check_worker_limits(const Config& config);

  Mode mode_;
  RunsAs runs_as_;
  ErrorList& errors_;
  std::vector<Endpoint> listeners_;
  std::vector<detail::PoolPositions> positions_;  // one per pool read
};

Config Loader::load(const toml::table& root, std::string path) {
  Config config;
  config.path = std::move(path);
  ConfigReader reader(root, "at the top level", {"manager", "proxy", "metrics", "pool"}, errors_);

  if (const toml::node* manager = reader.node("manager")) {
    if (mode_ == Mode::proxy)
      reader.error_at_key("manager",
                          "[manager] is for scgi-manager: scgi-proxy runs no workers and has no "
                          "control socket; remove this table, or run the file with scgi-manager");
    else
      read_manager(*manager, config.manager);
  }
  if (const toml::node* proxy = reader.node("proxy")) read_proxy(*proxy, config.proxy);
  if (const toml::node* metrics = reader.node("metrics")) read_metrics(*metrics, config.metrics);

  const toml::node* pools = reader.node("pool");
  if (pools != nullptr) read_pools(root, *pools, config.pools);
  if (pools == nullptr || (pools->is_array() && pools->as_array()->empty()))
    errors_.add(toml::source_position{1, 1},
                "no [[pool]] in this file: add at least one, e.g. [[pool]] with name = \"app\" "
                "and listen = \"127.0.0.1:4000\"");

  check_names(config.pools);
  check_endpoints();
  check_backends(config.pools);
  check_worker_limits(config);
  return config;
}

const toml::table* Loader::as_section(const toml::node& node, std::string_view name) {
  const toml::table* table = node.as_table();
  if (table == nullptr)
    errors_.add(
        node.source().begin,
        fmt::format("{} must be a table: write [{}] on a line of its own, its keys below it", name,
                    name));
  return table;
}

void Loader::read_manager(const toml::node& node, ManagerConfig& out) {
  const toml::table* table = as_section(node, "manager");
  if (table == nullptr) return;
  ConfigReader reader(
      *table, "in [manager]",
      {"control_socket", "control_group", "log_dir", "shutdown_timeout", "max_workers_per_pool"},
      errors_);

  if (reader.read_string("control_socket", out.control_socket)) {
    if (out.control_socket.empty())
      reader.error_at(*reader.node("control_socket"),
                      "control_socket must not be empty: scgictl connects there; e.g. "
                      "\"/run/scgi/scgi.sock\"");
    else if (out.control_socket.size() > kMaxUnixPathLength)
      reader.error_at(*reader.node("control_socket"),
                      fmt::format("control_socket is {} bytes long, and a Unix socket path takes "
                                  "at most {}: choose a shorter path",
                                  out.control_socket.size(), kMaxUnixPathLength));
    else
      listeners_.push_back({Address{Address::Kind::unix_socket, {}, 0, out.control_socket},
                            reader.value_position("control_socket"), "[manager] control_socket"});
  }
  if (reader.read_string("control_group", out.control_group) && !out.control_group.empty() &&
      getgrnam(out.control_group.c_str()) == nullptr)
    reader.error_at(*reader.node("control_group"),
                    fmt::format("no group {} on this machine: create it (groupadd --system {}) or "
                                "fix the name",
                                quote(out.control_group), out.control_group));
  reader.read_string("log_dir", out.log_dir);
  reader.read_positive_duration("shutdown_timeout", out.shutdown_timeout);
  reader.read_integer("max_workers_per_pool", std::uint32_t{1}, kMaxWorkersCeiling,
                      out.max_workers_per_pool);
}

void Loader::read_proxy(const toml::node& node, ProxyConfig& out) {
  const toml::table* table = as_section(node, "proxy");
  if (table == nullptr) return;
  ConfigReader reader(*table, "in [proxy]",
                      {"threads", "access_log", "shutdown_timeout", "spill_dir", "spill_limit"},
                      errors_);
  reader.read_integer("threads", std::uint32_t{0}, kMaxThreads, out.threads);
  reader.read_string("access_log", out.access_log);
  if (reader.read_string("spill_dir", out.spill_dir) && !out.spill_dir.starts_with('/'))
    reader.error_at(
        *reader.node("spill_dir"),
        fmt::format("spill_dir must be an absolute path, not {}", quote(out.spill_dir)));
  reader.read_size("spill_limit", out.spill_limit);
  if (mode_ == Mode::manager && reader.has("shutdown_timeout"))
    reader.error_at_key("shutdown_timeout",
                        "scgi-manager reads its shutdown_timeout from [manager] (it covers the "
                        "workers too): move it there");
  else
    reader.read_positive_duration("shutdown_timeout", out.shutdown_timeout);
}

void Loader::read_metrics(const toml::node& node, MetricsConfig& out) {
  const toml::table* table = as_section(node, "metrics");
  if (table == nullptr) return;
  ConfigReader reader(*table, "in [metrics]", {"listen"}, errors_);
  if (!reader.read_address("listen", out.listen) || !out.listen) return;
  if (out.listen->is_unix()) {
    reader.error_at(*reader.node("listen"),
                    "metrics listen must be a TCP address such as \"127.0.0.1:9100\": Prometheus "
                    "scrapes over TCP; write \"\" to turn metrics off");
    out.listen.reset();
    return;
  }
  listeners_.push_back({*out.listen, reader.value_position("listen"), "[metrics] listen"});
}

void Loader::read_pools(const toml::table& root, const toml::node& node,
                        std::vector<PoolConfig>& out) {
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    errors_.add(node.is_table() ? node.source().begin : root.find("pool")->first.source().begin,
                node.is_table() ? "pool must be written [[pool]], with double brackets: each "
                                  "[[pool]] starts one pool"
                                : "pool must be written as [[pool]] tables, one per pool");
    return;
  }
  for (const toml::node& element : *array) {
    const toml::table* table = element.as_table();
    if (table == nullptr) {
      errors_.add(element.source().begin,
                  "each pool must be a table: write [[pool]] on a line of its own, its keys "
                  "below it");
      continue;
    }
    detail::PoolPositions& positions = positions_.emplace_back();
    PoolConfig pool = detail::read_pool(*table, mode_, runs_as_, errors_, positions);
    if (pool.listen)
      listeners_.push_back(
          {*pool.listen, positions.listen_at, fmt::format("pool \"{}\"", pool.name)});
    out.push_back(std::move(pool));
  }
}

void Loader::check_names(const std::vector<PoolConfig>& pools) {
  for (std::size_t i = 0; i < pools.size(); ++i) {
    if (pools[i].name.empty()) continue;
    for (std::size_t j = 0; j < i; ++j) {
      if (pools[j].name != pools[i].name) continue;
      errors_.add(positions_[i].name_at,
                  fmt::format("pool name {} is already used by the pool at line {}: give each "
                              "pool its own name",
                              quote(pools[i].name), pools[j].position.line));
      break;
    }
  }
}

// A backend that is one of this file's own sockets sends requests round in a loop.
void Loader::check_backends(const std::vector<PoolConfig>& pools) {
  for (std::size_t i = 0; i < pools.size(); ++i) {
    for (const auto& [backend, at] : positions_[i].backends_at) {
      for (const Endpoint& own : listeners_) {
        if (clash(backend, own.address) == Clash::none) continue;
        errors_.add(at, fmt::format("backend {} is {}'s own address (line {}): requests would "
                                    "loop back into this process; point backends at the "
                                    "servers' own addresses",
                                    quote(backend.to_string()), own.owner, own.at.line));
        break;
      }
    }
  }
}

// Each pool within [manager] max_workers_per_pool (the pools are read after
// [manager], but the check waits for both, whatever their order in the file).
void Loader::check_worker_limits(const Config& config) {
  const std::uint32_t limit = config.manager.max_workers_per_pool;
  for (std::size_t i = 0; i < config.pools.size(); ++i) {
    const PoolConfig& pool = config.pools[i];
    if (pool.kind != PoolKind::command || pool.max_workers <= limit) continue;
    const detail::PoolPositions& at = positions_[i];
    if (at.workers_key.empty())
      errors_.add(at.name_at, fmt::format("pool {} runs {} workers by default, more than "
                                          "[manager] max_workers_per_pool ({}): set workers",
                                          quote(pool.name), pool.max_workers, limit));
    else
      errors_.add(at.workers_at,
                  fmt::format("{} = {} is more than [manager] max_workers_per_pool ({}): lower "
                              "it, or raise max_workers_per_pool (at most {})",
                              at.workers_key, pool.max_workers, limit, kMaxWorkersCeiling));
  }
}

void Loader::check_endpoints() {
  std::stable_sort(listeners_.begin(), listeners_.end(), [](const Endpoint& a, const Endpoint& b) {
    return std::tie(a.at.line, a.at.column) < std::tie(b.at.line, b.at.column);
  });
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    const Endpoint& later = listeners_[i];
    for (std::size_t j = 0; j < i; ++j) {
      const Endpoint& earlier = listeners_[j];
      const Clash kind = clash(later.address, earlier.address);
      if (kind == Clash::none) continue;
      if (kind == Clash::same)
        errors_.add(later.at,
                    fmt::format("address {} is already used by {} (line {}): give "
                                "each its own address",
                                quote(later.address.to_string()), earlier.owner, earlier.at.line));
      else
        errors_.add(later.at, fmt::format("address {} overlaps {} of {} (line {}): a wildcard "
                                          "address takes the port on every interface; use "
                                          "another port",
                                          quote(later.address.to_string()),
                                          quote(earlier.address.to_string()), earlier.owner,
                                          earlier.at.line));
      break;
    }
  }
}

// The whole file, or nullopt with the reason in `errors`.
std::optional<std::string> read_file(const std::string& path, ErrorList& errors) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    errors.add_file("is a directory: --config takes the configuration file itself");
    return std::nullopt;
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    errors.add_file(fmt::format("cannot open: {}", std::strerror(errno)));
    return std::nullopt;
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    errors.add_file(fmt::format("cannot read: {}", std::strerror(errno)));
    return std::nullopt;
  }
  return std::move(text).str();
}

}  // namespace

RunsAs running_as() {
  return ::geteuid() == 0 ? RunsAs::root : RunsAs::user;
}

ConfigResult parse_config(std::string_view text, std::string_view display_path, Mode mode,
                          RunsAs runs_as) {
  ErrorList errors{std::string(display_path)};
  toml::table root;
  try {
    root = toml::parse(text, display_path);
  } catch (const toml::parse_error& error) {
    std::string description(error.description());
    errors.add(error.source().begin, "invalid TOML: " + description);
    return ConfigResult::fail(errors.take_sorted());
  }
  Loader loader(mode, runs_as, errors);
  Config config = loader.load(root, std::string(display_path));
  if (!errors.empty()) return ConfigResult::fail(errors.take_sorted());
  return ConfigResult::ok(std::move(config));
}

ConfigResult load_config(const std::string& path, Mode mode, RunsAs runs_as) {
  ErrorList errors{path};
  std::optional<std::string> text = read_file(path, errors);
  if (!text) return ConfigResult::fail(errors.take_sorted());
  return parse_config(*text, path, mode, runs_as);
}

Result<std::string> control_socket_in(const std::string& path) {
  using R = Result<std::string>;
  ErrorList errors{path};
  const std::optional<std::string> text = read_file(path, errors);
  if (!text) return R::fail(errors.take_sorted().front().to_string());
  toml::table root;
  try {
    root = toml::parse(*text, path);
  } catch (const toml::parse_error& error) {
    errors.add(error.source().begin, "invalid TOML: " + std::string(error.description()));
    return R::fail(errors.take_sorted().front().to_string());
  }
  const toml::node* node = root.at_path("manager.control_socket").node();
  if (node == nullptr) return R::ok(ManagerConfig{}.control_socket);
  const std::optional<std::string> socket = node->value_exact<std::string>();
  if (!socket || socket->empty()) {
    errors.add(node->source().begin,
               "[manager] control_socket must be a path in double quotes, e.g. "
               "\"/run/scgi/scgi.sock\"");
    return R::fail(errors.take_sorted().front().to_string());
  }
  return R::ok(*socket);
}

}  // namespace scgi
