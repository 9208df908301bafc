// Reads one [[pool]] table: each key with its type and range, then the rules
// that tie a pool's keys together (one backend source, worker bounds, keys
// that need command, {port}/{socket} and the socket mode).
#include "pool_reader.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "scgi/pool_keys.hpp"

namespace scgi::detail {
namespace {

// Below this every request of a busy pool would be "slow".
constexpr Milliseconds kMinSlowRequestThreshold{100};

constexpr std::uint32_t kMaxWorkers = kMaxWorkersCeiling;
constexpr std::uint32_t kMaxCount = 1'000'000;  // concurrency, queue_size
// The smallest valid SCGI header block ("CONTENT_LENGTH\0" "0\0" "SCGI\0" "1\0").
constexpr std::uint64_t kMinHeaderBytes = 24;
// Each connection may hold this much while its header arrives.
constexpr std::uint64_t kMaxHeaderBytes = 16ull << 20;
// Each connection may hold this much of a body, and as much of a response.
constexpr std::uint64_t kMaxBufferBytes = 64ull << 20;
// DNS discovery re-resolves no more often than this.
constexpr Milliseconds kMinDiscoverInterval{100};
constexpr std::int64_t kMaxInteger = std::numeric_limits<std::int64_t>::max();

constexpr std::string_view kPortPlaceholder = "{port}";
constexpr std::string_view kSocketPlaceholder = "{socket}";

// body_buffer and response_buffer: a size up to kMaxBufferBytes.
void read_buffer_size(ConfigReader& reader, std::string_view key, std::uint64_t& out) {
  std::uint64_t size = out;
  if (!reader.read_size(key, size)) return;
  if (size > kMaxBufferBytes)
    reader.error_at(
        *reader.node(key),
        fmt::format("{} must be at most {} (each connection may hold this much), not {}", key,
                    format_size(kMaxBufferBytes), format_size(size)));
  else
    out = size;
}

bool valid_pool_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  return true;
}

// A spelling of `name` that the pattern takes, to offer in the message.
std::string pool_name_suggestion(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c >= 'A' && c <= 'Z')
      out += static_cast<char>(c - 'A' + 'a');
    else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')
      out += c;
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  return out.empty() ? "app" : out;
}

// How messages name the pool: by its name once it has one.
std::string label(const PoolConfig& pool) {
  return pool.name.empty() ? std::string("this pool") : "pool " + quote(pool.name);
}

bool is_ip_literal(const std::string& host) {
  unsigned char bytes[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), bytes) == 1 ||
         inet_pton(AF_INET6, host.c_str(), bytes) == 1;
}

class PoolReader {
 public:
  PoolReader(Mode mode, RunsAs runs_as, ErrorList& errors, PoolPositions& positions)
      : mode_(mode), runs_as_(runs_as), errors_(errors), positions_(positions) {}

  void read(const toml::table& table, PoolConfig& pool);

 private:
  std::optional<PoolKind> read_source(ConfigReader& reader, PoolConfig& pool);
  void read_command(ConfigReader& reader, PoolConfig& pool);
  void read_backends(ConfigReader& reader, PoolConfig& pool);
  void read_discovery(ConfigReader& reader, PoolConfig& pool);
  void read_traffic(ConfigReader& reader, PoolConfig& pool);
  void read_workers(ConfigReader& reader, PoolConfig& pool);
  void read_worker_count(ConfigReader& reader, PoolConfig& pool);
  bool read_socket_mode(ConfigReader& reader, PoolConfig& pool);
  void read_env(ConfigReader& reader, PoolConfig& pool);
  void read_identity(ConfigReader& reader, PoolConfig& pool);
  void refuse_switch_without_root(ConfigReader& reader, PoolConfig& pool);
  void read_listen_access(ConfigReader& reader, PoolConfig& pool);
  void read_restart_backoff(ConfigReader& reader, PoolConfig& pool);
  void read_slow_requests(ConfigReader& reader, PoolConfig& pool);
  void check_placeholders(ConfigReader& reader, const PoolConfig& pool);

  Mode mode_;
  RunsAs runs_as_;
  ErrorList& errors_;
  PoolPositions& positions_;
};

void PoolReader::read(const toml::table& table, PoolConfig& pool) {
  ConfigReader reader(table, "in [[pool]]", pool_key_names(), errors_);
  pool.position = to_position(table.source().begin);

  if (reader.read_string("name", pool.name)) {
    positions_.name_at = reader.value_position("name");
    if (!valid_pool_name(pool.name)) {
      reader.error_at(*reader.node("name"),
                      fmt::format("pool name {} may only contain a-z, 0-9, \"_\" and \"-\": "
                                  "e.g. name = {}",
                                  quote(pool.name), quote(pool_name_suggestion(pool.name))));
    }
  } else if (!reader.has("name")) {
    errors_.add(table.source().begin,
                "this [[pool]] needs a name, e.g. name = \"app\" (a-z, 0-9, \"_\" and \"-\")");
  }

  const bool listen_read = reader.read_address("listen", pool.listen);
  if (listen_read && pool.listen) positions_.listen_at = reader.value_position("listen");
  // Absent or "" (an invalid value has its own error already).
  const bool no_listen = !reader.has("listen") || (listen_read && !pool.listen);
  if (mode_ == Mode::proxy && no_listen)
    errors_.add(table.source().begin,
                fmt::format("{} has no listen address: scgi-proxy balances only what arrives "
                            "there; add e.g. listen = \"127.0.0.1:4000\"",
                            label(pool)));
  read_listen_access(reader, pool);

  const std::optional<PoolKind> kind = read_source(reader, pool);
  if (kind) pool.kind = *kind;
  if (kind == PoolKind::backends && mode_ == Mode::manager && no_listen)
    reader.error_at_key("backends",
                        fmt::format("{} has backends but no listen address: nothing would "
                                    "send it requests; add e.g. listen = \"127.0.0.1:4000\"",
                                    label(pool)));

  read_traffic(reader, pool);

  if (reader.has("command") && mode_ == Mode::manager) {
    read_workers(reader, pool);
  } else if (kind) {
    // A pool that balances servers run elsewhere has no workers to shape.
    for (std::string_view key : keys_only_for(PoolKind::command))
      if (key != kind_key(PoolKind::command) && reader.has(key))
        reader.error_at_key(key, fmt::format("{} only applies to a pool that runs its workers "
                                             "with command; this pool uses {}: remove {}",
                                             key, kind_key(*kind), key));
  }
}

// Exactly one of command, backends and discover, as the mode allows. Each one
// present is read even when they conflict, so that its own errors show too.
std::optional<PoolKind> PoolReader::read_source(ConfigReader& reader, PoolConfig& pool) {
  struct Source {
    std::string_view key;
    PoolKind kind;
  };
  std::vector<Source> sources;
  bool rejected = false;

  if (reader.has("command")) {
    if (mode_ == Mode::proxy) {
      reader.error_at_key("command",
                          "command needs scgi-manager: scgi-proxy only balances servers it does "
                          "not run; use backends = [\"HOST:PORT\", …] or discover = "
                          "\"dns:NAME:PORT\", or run this file with scgi-manager");
      rejected = true;
    } else {
      sources.push_back({"command", PoolKind::command});
      read_command(reader, pool);
    }
  }
  if (reader.has("backends")) {
    sources.push_back({"backends", PoolKind::backends});
    read_backends(reader, pool);
  }
  if (mode_ == Mode::manager) {
    for (std::string_view key : keys_only_for(PoolKind::discover)) {
      if (!reader.has(key)) continue;
      reader.error_at_key(key,
                          fmt::format("{} is for scgi-proxy only: scgi-manager does not follow "
                                      "DNS; list fixed addresses in backends, or run this "
                                      "pool in scgi-proxy",
                                      key));
      rejected = true;
    }
  } else if (reader.has("discover")) {
    sources.push_back({"discover", PoolKind::discover});
    read_discovery(reader, pool);
  } else {
    // discover itself is absent here: only the keys that go with it can be.
    for (std::string_view key : keys_only_for(PoolKind::discover))
      if (reader.has(key))
        reader.error_at_key(key, fmt::format("{} only applies with discover: remove it, or "
                                             "add discover = \"dns:NAME:PORT\"",
                                             key));
  }

  if (sources.empty()) {
    if (!rejected)
      errors_.add(reader.table().source().begin,
                  mode_ == Mode::manager
                      ? fmt::format("{} has nothing to run or balance: add command = "
                                    "[\"program\", \"arg\", …] to run workers, or backends = "
                                    "[\"HOST:PORT\", …] to balance servers run elsewhere",
                                    label(pool))
                      : fmt::format("{} has nothing to balance: add backends = "
                                    "[\"HOST:PORT\", …] or discover = \"dns:NAME:PORT\"",
                                    label(pool)));
    return std::nullopt;
  }
  if (sources.size() > 1) {
    std::sort(sources.begin(), sources.end(), [&](const Source& a, const Source& b) {
      const auto pa = reader.key_position(a.key);
      const auto pb = reader.key_position(b.key);
      return std::tie(pa.line, pa.column) < std::tie(pb.line, pb.column);
    });
    for (std::size_t i = 1; i < sources.size(); ++i)
      reader.error_at_key(
          sources[i].key,
          fmt::format("a pool takes only one of command, backends and discover, and this one "
                      "already has {}: keep command to run workers here, backends or discover to "
                      "balance servers run elsewhere",
                      sources[0].key));
    return std::nullopt;
  }
  return sources.front().kind;
}

void PoolReader::read_command(ConfigReader& reader, PoolConfig& pool) {
  const toml::node& node = *reader.node("command");
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    reader.error_at(node, node.is_string()
                              ? "command must be an array, not a string: it runs without a "
                                "shell, so write each word apart, e.g. command = [\"python3\", "
                                "\"app.py\"]"
                              : fmt::format("command must be an array of strings, e.g. command = "
                                            "[\"python3\", \"app.py\"], not {}",
                                            describe_type(node)));
    return;
  }
  if (array->empty()) {
    reader.error_at(node,
                    "command must not be empty: give the program and its arguments, e.g. "
                    "command = [\"python3\", \"app.py\"]");
    return;
  }
  std::vector<std::string> argv;
  bool valid = true;
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const auto* text = element.as_string();
    if (text == nullptr) {
      reader.error_at(element, fmt::format("command[{}] must be a string in quotes, not {}", i,
                                           describe_type(element)));
      valid = false;
    } else if (text->get().find('\0') != std::string::npos) {
      reader.error_at(element, fmt::format("command[{}] must not contain a NUL character", i));
      valid = false;
    } else if (i == 0 && text->get().empty()) {
      reader.error_at(element,
                      "the program, the first element of command, must not be empty: e.g. "
                      "\"python3\" or \"/srv/app/bin/server\"");
      valid = false;
    } else {
      argv.push_back(text->get());
    }
  }
  if (valid) pool.command = std::move(argv);
}

void PoolReader::read_backends(ConfigReader& reader, PoolConfig& pool) {
  const toml::node& node = *reader.node("backends");
  const toml::array* array = node.as_array();
  if (array == nullptr || array->empty()) {
    reader.error_at(node,
                    fmt::format("backends must be a non-empty array of addresses, e.g. "
                                "backends = [\"127.0.0.1:5001\", \"unix:/run/app.sock\"]{}",
                                array == nullptr ? ", not " + describe_type(node) : std::string()));
    return;
  }
  for (std::size_t i = 0; i < array->size(); ++i) {
    const toml::node& element = *array->get(i);
    const auto* text = element.as_string();
    if (text == nullptr) {
      reader.error_at(element, fmt::format("backends[{}] must be an address in quotes, not {}", i,
                                           describe_type(element)));
      continue;
    }
    auto address = parse_address(text->get());
    if (!address) {
      reader.error_at(element, fmt::format("backends[{}]: {}", i, address.error()));
      continue;
    }
    const auto duplicate = std::find(pool.backends.begin(), pool.backends.end(), address.value());
    if (duplicate != pool.backends.end()) {
      reader.error_at(element, fmt::format("backend {} is listed twice in this pool: remove one",
                                           quote(address.value().to_string())));
      continue;
    }
    pool.backends.push_back(address.value());
    positions_.backends_at.emplace_back(address.value(), element.source().begin);
  }
}

void PoolReader::read_discovery(ConfigReader& reader, PoolConfig& pool) {
  static constexpr std::string_view kExample = "e.g. \"dns:app.default.svc.cluster.local:5000\"";
  std::string text;
  if (reader.read_string("discover", text)) {
    const toml::node& node = *reader.node("discover");
    if (!text.starts_with("dns:")) {
      reader.error_at(node,
                      fmt::format("discover must be written \"dns:NAME:PORT\", {}", kExample));
    } else {
      auto address = parse_address(std::string_view(text).substr(4));
      if (!address || address.value().is_unix()) {
        reader.error_at(
            node, fmt::format("discover: {}; write \"dns:NAME:PORT\", {}",
                              address ? "a Unix socket cannot come from DNS" : address.error(),
                              kExample));
      } else if (is_ip_literal(address.value().host)) {
        reader.error_at(node, fmt::format("discover needs a DNS name, not the IP address {}: "
                                          "list fixed addresses in backends instead",
                                          quote(address.value().host)));
      } else {
        pool.discover = DnsDiscovery{address.value().host, address.value().port};
      }
    }
  }
  Milliseconds interval = pool.discover_interval;
  if (reader.read_positive_duration("discover_interval", interval)) {
    if (interval < kMinDiscoverInterval)
      reader.error_at(
          *reader.node("discover_interval"),
          fmt::format("discover_interval must be at least {} (each resolution asks "
                      "the DNS server), not {}",
                      format_duration(kMinDiscoverInterval), format_duration(interval)));
    else
      pool.discover_interval = interval;
  }
  if (reader.read_address("resolver", pool.resolver) && pool.resolver &&
      (pool.resolver->is_unix() || !is_ip_literal(pool.resolver->host))) {
    reader.error_at(*reader.node("resolver"),
                    "resolver must be an IP address with its port, e.g. \"127.0.0.1:53\" (a name "
                    "would need a resolver itself); write \"\" for the system's");
    pool.resolver.reset();
  }
}

// The keys of the balancing side, which every pool has.
void PoolReader::read_traffic(ConfigReader& reader, PoolConfig& pool) {
  reader.read_integer("concurrency", std::uint32_t{1}, kMaxCount, pool.concurrency);
  reader.read_integer("queue_size", std::uint32_t{0}, kMaxCount, pool.queue_size);
  reader.read_positive_duration("queue_timeout", pool.queue_timeout);
  reader.read_positive_duration("client_timeout", pool.client_timeout);
  reader.read_positive_duration("connect_timeout", pool.connect_timeout);
  reader.read_positive_duration("request_timeout", pool.request_timeout);
  std::uint64_t max_header = pool.max_header_bytes;
  if (reader.read_size("max_header", max_header)) {
    if (max_header < kMinHeaderBytes || max_header > kMaxHeaderBytes)
      reader.error_at(
          *reader.node("max_header"),
          fmt::format("max_header must be between {} bytes (the smallest valid SCGI "
                      "header) and {} (each connection holds this much), not {}",
                      kMinHeaderBytes, format_size(kMaxHeaderBytes), format_size(max_header)));
    else
      pool.max_header_bytes = max_header;
  }
  reader.read_size("max_body", pool.max_body_bytes);
  read_buffer_size(reader, "body_buffer", pool.body_buffer_bytes);
  read_buffer_size(reader, "response_buffer", pool.response_buffer_bytes);
  reader.read_size("response_spill", pool.response_spill_bytes);
  reader.read_size("client_min_rate", pool.client_min_rate);
  reader.read_bool("queue_time", pool.queue_time);
  reader.read_bool("keep_request_start", pool.keep_request_start);
  reader.read_bool("create_traceparent", pool.create_traceparent);
}

// The keys of workers the manager runs.
void PoolReader::read_workers(ConfigReader& reader, PoolConfig& pool) {
  const bool socket_known = read_socket_mode(reader, pool);
  read_worker_count(reader, pool);
  std::int64_t max_requests = 0;
  if (reader.read_integer("max_requests", std::int64_t{0}, kMaxInteger, max_requests))
    pool.max_requests = static_cast<std::uint64_t>(max_requests);
  reader.read_duration("max_lifetime", pool.max_lifetime);
  reader.read_size("max_rss", pool.max_rss_bytes);
  if (reader.read_string("cwd", pool.cwd) && !pool.cwd.empty() && !pool.cwd.starts_with("/")) {
    reader.error_at(
        *reader.node("cwd"),
        fmt::format("cwd must be an absolute path, starting with \"/\", not {}", quote(pool.cwd)));
    pool.cwd.clear();
  }
  read_env(reader, pool);
  read_identity(reader, pool);
  reader.read_positive_duration("stop_timeout", pool.stop_timeout);
  read_restart_backoff(reader, pool);
  reader.read_positive_duration("ready_timeout", pool.ready_timeout);
  if (reader.read_positive_duration("idle_timeout", pool.idle_timeout) && !pool.is_dynamic())
    reader.error_at_key("idle_timeout",
                        "idle_timeout only applies to a pool that grows and shrinks: set "
                        "min_workers and max_workers, or remove it");
  read_slow_requests(reader, pool);
  // With socket unusable, every placeholder would look misplaced.
  if (socket_known) check_placeholders(reader, pool);
}

// False when socket is given but unusable.
bool PoolReader::read_socket_mode(ConfigReader& reader, PoolConfig& pool) {
  if (!reader.has("socket")) return true;
  std::string text;
  if (!reader.read_string("socket", text)) return false;
  if (text == "inherit") {
    pool.socket = SocketMode::inherit;
  } else if (text == "port") {
    pool.socket = SocketMode::port;
  } else if (text == "unix") {
    pool.socket = SocketMode::unix_socket;
  } else {
    reader.error_at(*reader.node("socket"),
                    fmt::format("socket must be \"inherit\" (the manager passes fd 3), \"port\" "
                                "({{port}} in command) or \"unix\" ({{socket}} in command), not {}",
                                quote(text)));
    return false;
  }
  return true;
}

void PoolReader::read_worker_count(ConfigReader& reader, PoolConfig& pool) {
  const bool has_workers = reader.has("workers");
  const bool has_min = reader.has("min_workers");
  const bool has_max = reader.has("max_workers");
  if (has_workers && (has_min || has_max)) {
    reader.error_at_key(has_min ? "min_workers" : "max_workers",
                        "workers and min_workers/max_workers exclude each other: use workers = N "
                        "for a fixed size, or min_workers and max_workers for a pool that grows "
                        "and shrinks");
    return;
  }
  if (has_workers) {
    std::uint32_t workers = 0;
    if (reader.read_integer("workers", std::uint32_t{1}, kMaxWorkers, workers)) {
      pool.min_workers = pool.max_workers = workers;
      positions_.workers_key = "workers";
      positions_.workers_at = reader.value_position("workers");
    }
    return;
  }
  if (has_min != has_max) {
    reader.error_at_key(has_min ? "min_workers" : "max_workers",
                        fmt::format("{} needs {} too: a pool that grows and shrinks has both "
                                    "bounds; for a fixed size write workers = N",
                                    has_min ? "min_workers" : "max_workers",
                                    has_min ? "max_workers" : "min_workers"));
    return;
  }
  if (!has_min) return;
  std::uint32_t min = 0;
  std::uint32_t max = 0;
  const bool min_ok = reader.read_integer("min_workers", std::uint32_t{0}, kMaxWorkers, min);
  const bool max_ok = reader.read_integer("max_workers", std::uint32_t{1}, kMaxWorkers, max);
  if (!min_ok || !max_ok) return;
  if (min > max) {
    reader.error_at(*reader.node("min_workers"),
                    fmt::format("min_workers ({}) is more than max_workers ({}): swap them, or "
                                "raise max_workers",
                                min, max));
    return;
  }
  pool.min_workers = min;
  pool.max_workers = max;
  positions_.workers_key = "max_workers";
  positions_.workers_at = reader.value_position("max_workers");
}

void PoolReader::read_env(ConfigReader& reader, PoolConfig& pool) {
  const toml::node* node = reader.node("env");
  if (node == nullptr) return;
  const toml::table* table = node->as_table();
  if (table == nullptr) {
    reader.error_at(*node, fmt::format("env must be a table of strings, e.g. env = {{ APP_ENV = "
                                       "\"production\" }}, not {}",
                                       describe_type(*node)));
    return;
  }
  for (auto&& [key, value] : *table) {
    const std::string_view name = key.str();
    if (name.empty() || name.find('=') != std::string_view::npos ||
        name.find('\0') != std::string_view::npos) {
      errors_.add(key.source().begin,
                  fmt::format("env name {} is not usable: it must be non-empty, without \"=\"",
                              quote(name)));
      continue;
    }
    if (name.starts_with("LISTEN_") || name.starts_with("SCGI_")) {
      errors_.add(key.source().begin,
                  fmt::format("env {}: LISTEN_* and SCGI_* are set by scgi-manager for each "
                              "worker; choose another name",
                              name));
      continue;
    }
    const auto* text = value.as_string();
    if (text == nullptr) {
      errors_.add(value.source().begin,
                  fmt::format("env {} must be a string in quotes, not {}: environment values "
                              "are text",
                              name, describe_type(value)));
      continue;
    }
    if (text->get().find('\0') != std::string::npos) {
      errors_.add(value.source().begin,
                  fmt::format("env {} must not contain a NUL character", name));
      continue;
    }
    pool.env.emplace(std::string(name), text->get());
  }
}

void PoolReader::read_identity(ConfigReader& reader, PoolConfig& pool) {
  if (reader.read_string("user", pool.user) && !pool.user.empty() &&
      getpwnam(pool.user.c_str()) == nullptr) {
    reader.error_at(*reader.node("user"),
                    fmt::format("no user {} on this machine: create it (useradd --system {}) or "
                                "fix the name",
                                quote(pool.user), pool.user));
    pool.user.clear();
  }
  if (reader.read_string("group", pool.group) && !pool.group.empty() &&
      getgrnam(pool.group.c_str()) == nullptr) {
    reader.error_at(*reader.node("group"),
                    fmt::format("no group {} on this machine: create it (groupadd --system {}) or "
                                "fix the name",
                                quote(pool.group), pool.group));
    pool.group.clear();
  }
  reader.read_bool("allow_root", pool.allow_root);
  if (runs_as_ != RunsAs::root) {
    refuse_switch_without_root(reader, pool);
    return;
  }
  // A manager running as root: a worker that keeps uid 0 owns the machine when
  // the app has a hole, so that takes a user, or an explicit allow_root.
  if (pool.user.empty() && !pool.group.empty()) {
    reader.error_at_key("group",
                        fmt::format("{} sets group but not user: its workers would keep uid 0 "
                                    "(root); set user = \"NAME\" too (user = \"root\" with "
                                    "allow_root = true keeps them root on purpose)",
                                    label(pool)));
    return;
  }
  if (pool.allow_root) return;
  if (pool.user.empty()) {
    reader.error_at_key("command",
                        fmt::format("{} has no user, and scgi-manager runs as root: its workers "
                                    "would run as root; set user = \"NAME\" (e.g. useradd "
                                    "--system {}), or allow_root = true to run them as root on "
                                    "purpose",
                                    label(pool), pool.name.empty() ? "app" : pool.name));
  } else if (const passwd* user = getpwnam(pool.user.c_str()); user && user->pw_uid == 0) {
    reader.error_at_key("user",
                        fmt::format("user = {} runs the workers of {} as root: set another user, "
                                    "or allow_root = true to run them as root on purpose",
                                    quote(pool.user), label(pool)));
  }
}

// A manager that is not root cannot switch its workers to another user or
// group: every start would fail, so the check says so at once. Its own user
// and group name nothing to switch to and are fine.
void PoolReader::refuse_switch_without_root(ConfigReader& reader, PoolConfig& pool) {
  const uid_t own_uid = ::geteuid();
  const gid_t own_gid = ::getegid();
  const passwd* user = pool.user.empty() ? nullptr : getpwnam(pool.user.c_str());
  if (user && user->pw_uid != own_uid)
    reader.error_at_key("user",
                        fmt::format("user = {} needs scgi-manager to run as root to switch its "
                                    "workers to it (it runs as uid {}): run it as root, or remove "
                                    "user to run them as uid {}",
                                    quote(pool.user), own_uid, own_uid));
  const group* group = pool.group.empty() ? nullptr : getgrnam(pool.group.c_str());
  if (group && group->gr_gid != own_gid)
    reader.error_at_key("group",
                        fmt::format("group = {} needs scgi-manager to run as root to switch its "
                                    "workers to it (it runs as gid {}): run it as root, or remove "
                                    "group",
                                    quote(pool.group), own_gid));
}

// Who may connect to a Unix front door: anyone who can reach an SCGI socket
// sets every CGI variable, so it is never world-writable unless asked for.
void PoolReader::read_listen_access(ConfigReader& reader, PoolConfig& pool) {
  const bool unix_listen = pool.listen && pool.listen->is_unix();
  for (std::string_view key : {"listen_mode", "listen_group"}) {
    if (!reader.has(key) || unix_listen) continue;
    reader.error_at_key(key, fmt::format("{} only applies to a Unix listen address (listen = "
                                         "\"unix:/run/scgi/app.sock\"); a TCP port is open to "
                                         "every local user: remove {}",
                                         key, key));
  }
  if (!unix_listen) return;
  std::string mode;
  if (reader.read_string("listen_mode", mode)) {
    const bool digits = !mode.empty() && mode.size() <= 4 &&
                        mode.find_first_not_of("01234567") == std::string::npos;
    const unsigned long value = digits ? std::stoul(mode, nullptr, 8) : 0;
    if (!digits || value > 0777 || (value & 0600) != 0600)
      reader.error_at(*reader.node("listen_mode"),
                      fmt::format("listen_mode must be an octal mode in quotes that lets the "
                                  "owner in, e.g. listen_mode = \"0660\" (owner and group), not "
                                  "{}",
                                  quote(mode)));
    else
      pool.listen_mode = static_cast<std::uint32_t>(value);
  }
  if (reader.read_string("listen_group", pool.listen_group) && !pool.listen_group.empty() &&
      getgrnam(pool.listen_group.c_str()) == nullptr) {
    reader.error_at(*reader.node("listen_group"),
                    fmt::format("no group {} on this machine: create it (groupadd --system {}) or "
                                "fix the name",
                                quote(pool.listen_group), pool.listen_group));
    pool.listen_group.clear();
  }
}

void PoolReader::read_slow_requests(ConfigReader& reader, PoolConfig& pool) {
  Milliseconds threshold = pool.slow_request_threshold;
  if (reader.read_duration("slow_request_threshold", threshold)) {
    if (threshold.count() != 0 && threshold < kMinSlowRequestThreshold)
      reader.error_at(
          *reader.node("slow_request_threshold"),
          fmt::format("slow_request_threshold must be \"0\" (off) or at least {} "
                      "(each slow request costs a look at its worker), not {}",
                      format_duration(kMinSlowRequestThreshold), format_duration(threshold)));
    else
      pool.slow_request_threshold = threshold;
  }
  std::string signal;
  if (!reader.read_string("slow_request_signal", signal) || signal.empty()) return;
  const std::optional<int> number = slow_request_signal_number(signal);
  if (!number) {
    reader.error_at(*reader.node("slow_request_signal"),
                    fmt::format("slow_request_signal must be \"SIGUSR1\", \"SIGUSR2\", "
                                "\"SIGQUIT\", \"SIGWINCH\", \"SIGPROF\" or \"\" (none), not {} "
                                "(a signal that stops the worker is not a report)",
                                quote(signal)));
    return;
  }
  if (pool.slow_request_threshold.count() == 0) {
    reader.error_at(*reader.node("slow_request_signal"),
                    "slow_request_signal needs slow_request_threshold: when is a request slow?");
    return;
  }
  pool.slow_request_signal = *number;
}

void PoolReader::read_restart_backoff(ConfigReader& reader, PoolConfig& pool) {
  const toml::node* node = reader.node("restart_backoff");
  if (node == nullptr) return;
  static constexpr std::string_view kShape =
      "restart_backoff must be two durations, the first delay and the ceiling, e.g. "
      "restart_backoff = [\"100ms\", \"30s\"]";
  const toml::array* array = node->as_array();
  if (array == nullptr || array->size() != 2) {
    reader.error_at(*node, array == nullptr
                               ? fmt::format("{}, not {}", kShape, describe_type(*node))
                               : fmt::format("{}, not {} of them", kShape, array->size()));
    return;
  }
  Milliseconds delays[2];
  bool valid = true;
  for (std::size_t i = 0; i < 2; ++i) {
    const toml::node& element = *array->get(i);
    const auto* text = element.as_string();
    if (text == nullptr) {
      reader.error_at(element, fmt::format("restart_backoff[{}] must be a duration in quotes, "
                                           "e.g. \"{}\", not {}",
                                           i, i == 0 ? "100ms" : "30s", describe_type(element)));
      valid = false;
      continue;
    }
    auto delay = parse_duration(text->get());
    if (!delay) {
      reader.error_at(element, fmt::format("restart_backoff[{}]: {}", i, delay.error()));
      valid = false;
      continue;
    }
    delays[i] = delay.value();
  }
  if (!valid) return;
  const toml::node& first = *array->get(0);
  if (delays[0].count() <= 0) {
    reader.error_at(first,
                    "the first restart delay must be longer than 0, or a worker that "
                    "keeps dying is restarted in a busy loop: e.g. \"100ms\"");
    return;
  }
  if (delays[0] > delays[1]) {
    reader.error_at(first, fmt::format("the first restart delay ({}) is longer than the ceiling "
                                       "({}): swap them",
                                       format_duration(delays[0]), format_duration(delays[1])));
    return;
  }
  pool.restart_backoff = RestartBackoff{delays[0], delays[1]};
}

// {port} and {socket} are replaced per worker, and only in their socket mode:
// a placeholder left unreplaced, or a mode whose placeholder is missing, would
// leave the worker and the manager looking at different sockets.
void PoolReader::check_placeholders(ConfigReader& reader, const PoolConfig& pool) {
  std::vector<const toml::node*> texts;
  if (const toml::array* command = reader.node("command")->as_array())
    for (const toml::node& element : *command)
      if (element.is_string()) texts.push_back(&element);
  if (const toml::node* env = reader.node("env"); env != nullptr && env->is_table())
    for (auto&& [key, value] : *env->as_table())
      if (value.is_string()) texts.push_back(&value);

  const auto wanted = [&](std::string_view placeholder) {
    return placeholder == kPortPlaceholder ? pool.socket == SocketMode::port
                                           : pool.socket == SocketMode::unix_socket;
  };
  bool seen_port = false;
  bool seen_socket = false;
  for (const toml::node* node : texts) {
    const std::string& text = node->as_string()->get();
    for (std::size_t open = text.find('{'); open != std::string::npos;
         open = text.find('{', open + 1)) {
      const std::size_t close = text.find('}', open);
      if (close == std::string::npos) break;
      const std::string_view placeholder = std::string_view(text).substr(open, close - open + 1);
      const std::string_view word = placeholder.substr(1, placeholder.size() - 2);
      if (placeholder == kPortPlaceholder || placeholder == kSocketPlaceholder) {
        (placeholder == kPortPlaceholder ? seen_port : seen_socket) = true;
        if (!wanted(placeholder))
          reader.error_at(
              *node, fmt::format("{} is only replaced when socket = \"{}\", and this "
                                 "pool has socket = \"{}\": {}",
                                 placeholder, placeholder == kPortPlaceholder ? "port" : "unix",
                                 pool.socket == SocketMode::inherit ? "inherit"
                                 : pool.socket == SocketMode::port  ? "port"
                                                                    : "unix",
                                 pool.socket == SocketMode::inherit
                                     ? "set socket to match, or remove the placeholder"
                                     : "use the placeholder of this socket mode"));
        continue;
      }
      const bool lowercase_word =
          !word.empty() && word.size() <= 8 &&
          std::all_of(word.begin(), word.end(), [](char c) { return c >= 'a' && c <= 'z'; });
      if (!lowercase_word) continue;
      if (edit_distance(word, "port") <= 1 || edit_distance(word, "socket") <= 2)
        reader.error_at(*node, fmt::format("{} is not a placeholder: did you mean {}?", placeholder,
                                           edit_distance(word, "port") <= 1 ? kPortPlaceholder
                                                                            : kSocketPlaceholder));
    }
  }
  if (pool.socket == SocketMode::port && !seen_port)
    reader.error_at(*reader.node("socket"),
                    "socket = \"port\" but neither command nor env contains {port}: pass the port "
                    "to the worker, e.g. command = [\"python3\", \"app.py\", \"--port\", "
                    "\"{port}\"]");
  if (pool.socket == SocketMode::unix_socket && !seen_socket)
    reader.error_at(*reader.node("socket"),
                    "socket = \"unix\" but neither command nor env contains {socket}: pass the "
                    "path to the worker, e.g. command = [\"python3\", \"app.py\", \"--socket\", "
                    "\"{socket}\"]");
}

}  // namespace

PoolConfig read_pool(const toml::table& table, Mode mode, RunsAs runs_as, ErrorList& errors,
                     PoolPositions& positions) {
  PoolConfig pool;
  PoolReader(mode, runs_as, errors, positions).read(table, pool);
  return pool;
}

}  // namespace scgi::detail
