// The configuration file (docs/design.md, "Configuration") as typed values
// with their defaults, and its loading: every mistake in a file is reported
// at once, each as FILE:LINE:COLUMN: message.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scgi/address.hpp"
#include "scgi/result.hpp"
#include "scgi/units.hpp"

namespace scgi {

// The two binaries accept slightly different files: scgi-proxy runs no
// workers (no [manager], no command), scgi-manager follows no DNS (no discover).
enum class Mode { proxy, manager };

// Where something was written in the file; 1-based.
struct SourcePosition {
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

struct ConfigError {
  std::string file;
  std::uint32_t line = 0;  // 0 when the error concerns the whole file (e.g. it cannot be read)
  std::uint32_t column = 0;
  std::string message;

  // "FILE:LINE:COLUMN: message" (or "FILE: message" without a position).
  std::string to_string() const;
};

// No pool runs more workers than this, whatever its file says.
inline constexpr std::uint32_t kMaxWorkersCeiling = 4096;

struct ManagerConfig {
  std::string control_socket = "/run/scgi/scgi.sock";  // scgictl connects here
  std::string control_group;                           // "" = owner only (mode 0600)
  std::string log_dir;  // worker stdout/stderr files; "" = the manager's own log
  Milliseconds shutdown_timeout{30'000};
  // The most workers one pool may run: a pool's workers/max_workers and
  // scgictl scale are held to it, so that a typo or a control_group member
  // cannot fork the machine to its knees. At most kMaxWorkersCeiling.
  std::uint32_t max_workers_per_pool = 1024;
};

struct ProxyConfig {
  std::uint32_t threads = 0;  // event-loop threads; 0 = one per core
  std::string access_log;     // "" = off, "-" = stderr, else a file path
  // Where responses too large for response_buffer are held for slow clients,
  // in unnamed files (O_TMPFILE) that vanish when closed; and how much all of
  // them together may hold at once in this process.
  std::string spill_dir = "/var/tmp";
  std::uint64_t spill_limit = 4ull << 30;
  // scgi-proxy only: how long requests in flight may take to finish on SIGTERM
  // (scgi-manager uses [manager] shutdown_timeout, which also covers its workers).
  Milliseconds shutdown_timeout{30'000};
};

struct MetricsConfig {
  // Prometheus text format at /metrics; nullopt = off (written "").
  std::optional<Address> listen = Address{Address::Kind::tcp, "127.0.0.1", 9100, {}};
};

// How a supervised worker learns where to accept SCGI connections.
enum class SocketMode {
  inherit,      // the manager binds and passes fd 3 (LISTEN_FDS=1, LISTEN_PID)
  port,         // {port} in command/env is a free 127.0.0.1 port
  unix_socket,  // {socket} in command/env is a Unix socket path (written "unix")
};

// Where a pool's backends come from: exactly one per pool.
enum class PoolKind {
  command,   // workers run and supervised by scgi-manager
  backends,  // fixed addresses, only balanced
  discover,  // addresses from DNS, re-resolved (scgi-proxy only)
};

struct DnsDiscovery {
  std::string name;  // a DNS name, never an IP literal
  std::uint16_t port = 0;

  bool operator==(const DnsDiscovery&) const = default;
};

struct RestartBackoff {
  Milliseconds first{100};  // the first delay, doubling up to the ceiling
  Milliseconds ceiling{30'000};

  bool operator==(const RestartBackoff&) const = default;
};

struct PoolConfig {
  std::string name;               // [a-z0-9_-]+, unique
  SourcePosition position;        // of the [[pool]] header, for later messages
  std::optional<Address> listen;  // nullopt: supervised only, not balanced (scgi-manager)
  // A Unix `listen` socket's mode and group: who may connect (connecting needs
  // write permission). Never wider than this, whatever the umask.
  std::uint32_t listen_mode = 0660;
  std::string listen_group;  // "" = the daemon's own group

  PoolKind kind = PoolKind::command;
  std::vector<std::string> command;  // argv, never a shell; {port}/{socket} not yet replaced
  std::vector<Address> backends;
  std::optional<DnsDiscovery> discover;
  Milliseconds discover_interval{5'000};
  std::optional<Address> resolver;  // nullopt: the system's resolver

  SocketMode socket = SocketMode::inherit;
  // A fixed pool (workers = N) has min_workers == max_workers == N.
  std::uint32_t min_workers = 4;
  std::uint32_t max_workers = 4;

  std::uint32_t concurrency = 1;
  std::uint32_t queue_size = 1024;
  Milliseconds queue_timeout{5'000};
  Milliseconds client_timeout{10'000};
  Milliseconds connect_timeout{1'000};
  Milliseconds request_timeout{60'000};
  std::uint64_t max_header_bytes = 64 * 1024;
  std::uint64_t max_body_bytes = 0;  // 0 = unlimited
  // A body up to this size is read whole before a backend slot is taken, so a
  // slow client never holds a worker while it arrives; of a larger body, this
  // much is read first and the rest streamed. 0 = stream from the first byte.
  std::uint64_t body_buffer_bytes = 64 * 1024;
  // Response bytes read ahead of a client that reads slowly: a response that
  // fits is taken from the backend whole and its slot given back at once.
  std::uint64_t response_buffer_bytes = 256 * 1024;
  // Past response_buffer, response bytes a slow client has not read yet go to
  // an unnamed file in [proxy] spill_dir, up to this many per response, so the
  // backend is still freed when it is done (nginx: proxy_max_temp_file_size).
  // 0 = never: a larger response holds its backend until the client reads it.
  std::uint64_t response_spill_bytes = 1ull << 30;
  // Bytes per second a client must keep up, on average, while the proxy waits
  // on it (body or response): its waits may total client_timeout plus one
  // second per client_min_rate bytes moved. 0 = only client_timeout per gap.
  std::uint64_t client_min_rate = 8 * 1024;
  // Variables added to each request's header (docs/design.md, "Variables the
  // proxy adds"): the accept's time and the queue wait, for APM agents and
  // autoscalers; a new W3C traceparent for requests that came without one.
  bool queue_time = true;
  // Trust an HTTP_X_REQUEST_START the request came with: only for a front end
  // that sets it itself (nginx: scgi_param HTTP_X_REQUEST_START "t=${msec}";).
  bool keep_request_start = false;
  bool create_traceparent = false;

  std::uint64_t max_requests = 0;   // 0 = never recycle on count
  Milliseconds max_lifetime{0};     // 0 = never recycle on age
  std::uint64_t max_rss_bytes = 0;  // 0 = never recycle on size

  std::string cwd;  // "" = the manager's own
  // The worker's whole environment, besides the LISTEN_* and SCGI_* the manager sets.
  std::map<std::string, std::string> env;
  std::string user;   // "" = do not change
  std::string group;  // "" = do not change
  // A manager running as root runs a pool's workers as root only when told so.
  bool allow_root = false;
  Milliseconds stop_timeout{10'000};
  RestartBackoff restart_backoff;
  Milliseconds ready_timeout{10'000};
  // A dynamic pool retires a worker once it could have done without one for this long.
  Milliseconds idle_timeout{30'000};
  // A request that has run this long on its worker is recorded in the slow
  // log with a snapshot of the worker, which then gets slow_request_signal
  // (0: none), e.g. SIGUSR1 for Python's faulthandler. 0 ms = off.
  Milliseconds slow_request_threshold{0};
  int slow_request_signal = 0;

  bool is_dynamic() const { return min_workers != max_workers; }
};

struct Config {
  std::string path;  // as given to the loader, for messages
  ManagerConfig manager;
  ProxyConfig proxy;
  MetricsConfig metrics;
  std::vector<PoolConfig> pools;  // in file order, at least one
};

// Either a valid Config or every error found in the file, in file order.
class ConfigResult {
 public:
  static ConfigResult ok(Config config);
  static ConfigResult fail(std::vector<ConfigError> errors);

  explicit operator bool() const { return config_.has_value(); }
  const Config& config() const& { return *config_; }
  // By value from a temporary, so that `parse_config(...).config()` never dangles.
  Config config() && { return std::move(*config_); }
  const std::vector<ConfigError>& errors() const& { return errors_; }
  std::vector<ConfigError> errors() && { return std::move(errors_); }

 private:
  std::optional<Config> config_;
  std::vector<ConfigError> errors_;
};

// Who will run the file's workers: a manager running as root must not run
// them as root unless a pool says allow_root = true (see read_identity).
enum class RunsAs { user, root };

// The RunsAs of this process (its effective uid).
RunsAs running_as();

// Reads and validates the file at `path`; messages name it as given.
ConfigResult load_config(const std::string& path, Mode mode, RunsAs runs_as = RunsAs::user);

// Validates `text`; `display_path` is the file name used in messages.
ConfigResult parse_config(std::string_view text, std::string_view display_path, Mode mode,
                          RunsAs runs_as = RunsAs::user);

// The control socket of a manager started with the file at `path`: its
// [manager] control_socket, or the default. Only that key is read, so a file
// with mistakes elsewhere still names its manager's socket (scgictl --config
// reaches the manager, which then reports the rest). Fails, with the
// position, when the file cannot be read, is not TOML, or the key is not a
// non-empty string.
Result<std::string> control_socket_in(const std::string& path);

// The signals slow_request_signal may name, by name ("SIGUSR1") and number:
// those runtimes catch to report what they are doing. A worker that does not
// catch one gets its default action (most end the process): docs/slowlog.md.
std::optional<int> slow_request_signal_number(std::string_view name);
std::string_view slow_request_signal_name(int number);  // "" for 0 or an unknown one

// One line for `--check`: "FILE: OK, 2 pools (app: 4 workers, api: 2-16 workers)".
std::string summarize(const Config& config);

// Its size in a few words: "2 pools, 6-20 workers" ("1 pool" without workers).
std::string count_pools_and_workers(const Config& config);

}  // namespace scgi
