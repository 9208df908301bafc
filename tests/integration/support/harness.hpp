// The pieces every integration test starts: a scratch folder, sample workers
// on free ports, scgi-proxy or scgi-manager with a configuration written for
// the test, scgictl and scgi-load runs.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "net.hpp"
#include "process.hpp"

namespace scgi::test {

// A fresh folder under the system's temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  void write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// A binary built by this project: build/bin/NAME.
std::string built_binary(const std::string& name);

// One scgi-sample-worker on a free 127.0.0.1 port, ready when constructed.
class SampleWorker {
 public:
  SampleWorker(const TempDir& dir, const std::string& name);
  const Address& address() const { return address_; }
  const std::string& name() const { return name_; }
  Process& process() { return process_; }

 private:
  std::string name_;
  Address address_;
  Process process_;
};

// scgi-proxy running `config` (TOML), ready when `listen` accepts.
class ProxyProcess {
 public:
  ProxyProcess(const TempDir& dir, const std::string& config, const Address& listen,
               const std::string& name = "proxy");
  Process& process() { return process_; }
  const std::string& config_path() const { return config_path_; }

 private:
  std::string config_path_;
  Process process_;
};

// GET over plain HTTP/1.0 on loopback (for /metrics); the whole response.
std::string http_get(std::uint16_t port, const std::string& path);

// The value of one sample line of a Prometheus text scrape, e.g.
// metric_value(text, "scgi_requests_total{code=\"200\",pool=\"app\"}"); -1 when absent.
double metric_value(const std::string& scrape, const std::string& series);

// An scgi-proxy file with one pool "app" for a test.
struct OnePool {
  Address listen;
  std::vector<Address> backends;
  std::string pool_keys{};         // more lines for [[pool]], e.g. "concurrency = 2"
  std::uint16_t metrics_port = 0;  // 0: metrics off
  std::string access_log{};        // "": off
  std::string proxy_keys{};        // more lines for [proxy]
};
std::string one_pool_config(const OnePool& spec);

// TOML list of quoted addresses: ["127.0.0.1:1", "127.0.0.1:2"].
std::string toml_addresses(const std::vector<Address>& addresses);

// The usual proxy test: sample workers named `workers` behind scgi-proxy, its
// one pool "app" made of them (then `more_backends`), with metrics on a free
// port and an access log in the test's folder.
struct ProxiedWorkersSpec {
  std::vector<std::string> workers{"w1"};
  std::vector<Address> more_backends{};  // after the workers, e.g. one nothing listens on
  std::string pool_keys{};               // more lines for [[pool]], e.g. "concurrency = 1"
  std::string proxy_keys{};              // more lines for [proxy]
};

class ProxiedWorkers {
 public:
  ProxiedWorkers(const TempDir& dir, ProxiedWorkersSpec spec = {});
  const Address& listen() const { return listen_; }
  // The sample worker named `name`.
  SampleWorker& worker(const std::string& name);
  Process& proxy() { return proxy_.process(); }
  const std::string& access_log() const { return access_log_; }
  // Its configuration with other backends and pool keys, for a reload (the file
  // is "proxy.toml" in the test's folder): the same listen, metrics and access log.
  std::string config(const std::vector<Address>& backends, const std::string& pool_keys) const;
  // One scrape of /metrics.
  std::string scrape() const;

 private:
  std::vector<SampleWorker> workers_;
  Address listen_;
  std::uint16_t metrics_port_;
  std::string access_log_;
  ProxyProcess proxy_;
};

// Series of pool "app" in a scrape that tests wait on; -1 when absent.
double queue_length(const std::string& scrape);
double in_flight(const std::string& scrape, const Address& backend);
double outcomes(const std::string& scrape, const std::string& outcome);
// The sum of every series of `name` (all its label sets); 0 when none.
double metric_sum(const std::string& scrape, const std::string& name);

// The key=value fields of each line of an access log.
std::vector<std::map<std::string, std::string>> access_log_lines(const std::string& path);

// scgi-load in the background (closed loop, 8 connections, --json); `extra`
// are more of its options, e.g. {"--query", "sleep_ms=2"}.
Process start_load(const TempDir& dir, const Address& target, const std::string& duration,
                   const std::string& name, const std::vector<std::string>& extra = {});
// Its JSON report once it has finished (waits up to a minute); empty if none.
nlohmann::json finish_load(Process& load);

// An scgi-manager file with one pool "app" of workers for a test.
struct ManagedPool {
  Address listen;
  std::vector<std::string> command;  // argv of the worker
  std::vector<Address> backends{};   // instead of `command`: a pool of fixed backends
  std::string pool_keys{};           // more lines for [[pool]], e.g. "workers = 2"
  std::uint16_t metrics_port = 0;    // 0: a free one is picked
  std::string manager_keys{};        // more lines for [manager]
  std::string program{};             // the scgi-manager to run ("": the one built)
};

// scgi-manager running a ManagedPool, with metrics and a control socket in
// `dir`; ready when `ready_workers` workers of "app" are ready (a pool of fixed
// backends: when it accepts).
class ManagerProcess {
 public:
  ManagerProcess(const TempDir& dir, ManagedPool spec, int ready_workers);
  Process& process() { return process_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& control_socket() const { return control_socket_; }
  std::uint16_t metrics_port() const { return metrics_port_; }
  // One scrape of /metrics.
  std::string scrape() const;
  // scgi_workers{pool="app",state=STATE}; -1 when the scrape fails.
  double workers(const std::string& state) const;
  // scgi_worker_restarts_total{pool="app",reason=REASON}.
  double restarts(const std::string& reason) const;
  // Requests of "app" served so far (scgi_request_outcomes_total, served).
  double served() const;
  // Waits until `count` workers of "app" are in `state`.
  bool wait_workers(const std::string& state, int count, std::chrono::milliseconds timeout = 20s);
  // The worker processes it runs now (its direct children).
  std::set<pid_t> worker_pids() const;

 private:
  std::string config_path_;
  std::string control_socket_;
  std::uint16_t metrics_port_ = 0;
  Process process_;
};

std::string managed_pool_config(const ManagedPool& spec, const std::string& control_socket);

// One scgictl run, to its end.
struct CtlRun {
  int exit_code = -1;  // -1: killed by a signal, or still running at the timeout (then killed)
  std::string out;     // its stdout
  std::string err;     // its stderr
};

struct CtlOptions {
  std::vector<std::string> prefix{};         // run through this, e.g. setpriv as another user
  std::map<std::string, std::string> env{};  // added to the test's own, e.g. SCGI_SOCKET
  std::chrono::milliseconds timeout = 60s;
};

// scgictl ARGUMENTS, with no socket chosen for it (`arguments` or SCGI_SOCKET in
// options.env may choose one); waits for its end. Its output stays in `dir`.
CtlRun run_scgictl(const TempDir& dir, const std::vector<std::string>& arguments,
                   const CtlOptions& options = {});
// scgictl on `manager`'s control socket.
CtlRun scgictl(const TempDir& dir, const ManagerProcess& manager,
               const std::vector<std::string>& arguments, const CtlOptions& options = {});
// The command line of that run, for one the test starts itself (logs -f, top).
std::vector<std::string> scgictl_command(const ManagerProcess& manager,
                                         const std::vector<std::string>& arguments);

// The sample worker as a pool's command.
std::vector<std::string> sample_worker_command(std::vector<std::string> extra = {});

// Children of a process, from /proc (direct children only).
std::set<pid_t> child_pids(pid_t parent);
bool process_exists(pid_t pid);

}  // namespace scgi::test
