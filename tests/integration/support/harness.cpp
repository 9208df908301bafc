#include "harness.hpp"

#include <atomic>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

namespace scgi::test {

TempDir::TempDir() {
  std::random_device random;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = std::filesystem::temp_directory_path() /
                     ("scgi-test-" + std::to_string(::getpid()) + "-" + std::to_string(random()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temp dir");
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void TempDir::write(const std::string& name, const std::string& content) const {
  std::ofstream out(file(name), std::ios::binary);
  out << content;
}

std::string built_binary(const std::string& name) {
  return std::string(SCGI_BIN_DIR) + "/" + name;
}

SampleWorker::SampleWorker(const TempDir& dir, const std::string& name)
    : name_(name), address_(loopback(free_port())) {
  process_ = Process::start(
      {built_binary("scgi-sample-worker"), "--port", std::to_string(address_.port), "--name", name},
      dir.file(name + ".log"));
  if (!wait_until_accepting(address_))
    throw std::runtime_error("sample worker " + name + " did not start: " + process_.log());
}

ProxyProcess::ProxyProcess(const TempDir& dir, const std::string& config, const Address& listen,
                           const std::string& name)
    : config_path_(dir.file(name + ".toml")) {
  dir.write(name + ".toml", config);
  process_ = Process::start({built_binary("scgi-proxy"), "--config", config_path_},
                            dir.file(name + ".log"));
  if (!wait_until_accepting(listen))
    throw std::runtime_error("scgi-proxy did not start: " + process_.log());
}

std::string http_get(std::uint16_t port, const std::string& path) {
  const int fd = connect_to(loopback(port));
  if (fd < 0) return {};
  Response response = send_request_on(
      fd, "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 10s);
  ::close(fd);
  return response.bytes;
}

double metric_value(const std::string& scrape, const std::string& series) {
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, series.size(), series) == 0 && line.size() > series.size() &&
        line[series.size()] == ' ')
      return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

std::string one_pool_config(const OnePool& spec) {
  std::string text = "[proxy]\naccess_log = \"" + spec.access_log + "\"\n" + spec.proxy_keys +
                     "\n[metrics]\nlisten = \"";
  if (spec.metrics_port != 0) text += "127.0.0.1:" + std::to_string(spec.metrics_port);
  text += "\"\n[[pool]]\nname = \"app\"\nlisten = \"" + spec.listen.to_string() +
          "\"\nbackends = " + toml_addresses(spec.backends) + "\n" + spec.pool_keys + "\n";
  return text;
}

std::string toml_addresses(const std::vector<Address>& addresses) {
  std::string out = "[";
  for (std::size_t i = 0; i < addresses.size(); ++i)
    out += (i ? ", \"" : "\"") + addresses[i].to_string() + "\"";
  return out + "]";
}

namespace {

std::vector<SampleWorker> start_sample_workers(const TempDir& dir,
                                               const std::vector<std::string>& names) {
  std::vector<SampleWorker> workers;
  workers.reserve(names.size());
  for (const std::string& name : names)
    workers.emplace_back(dir, name);
  return workers;
}

std::vector<Address> backends_of(const std::vector<SampleWorker>& workers,
                                 const std::vector<Address>& more) {
  std::vector<Address> backends;
  for (const SampleWorker& worker : workers)
    backends.push_back(worker.address());
  backends.insert(backends.end(), more.begin(), more.end());
  return backends;
}

}  // namespace

ProxiedWorkers::ProxiedWorkers(const TempDir& dir, ProxiedWorkersSpec spec)
    : workers_(start_sample_workers(dir, spec.workers)),
      listen_(loopback(free_port())),
      metrics_port_(free_port()),
      access_log_(dir.file("access.log")),
      proxy_(dir,
             one_pool_config({.listen = listen_,
                              .backends = backends_of(workers_, spec.more_backends),
                              .pool_keys = spec.pool_keys,
                              .metrics_port = metrics_port_,
                              .access_log = access_log_,
                              .proxy_keys = spec.proxy_keys}),
             listen_) {
  // The pool listens before /metrics does: a test may read metrics at once.
  if (!eventually([&] { return scrape().find("scgi_queue_capacity") != std::string::npos; }, 20s))
    throw std::runtime_error("scgi-proxy's /metrics did not answer: " + proxy_.process().log());
}

SampleWorker& ProxiedWorkers::worker(const std::string& name) {
  for (SampleWorker& worker : workers_)
    if (worker.name() == name) return worker;
  throw std::invalid_argument("no sample worker named " + name);
}

std::string ProxiedWorkers::config(const std::vector<Address>& backends,
                                   const std::string& pool_keys) const {
  return one_pool_config({.listen = listen_,
                          .backends = backends,
                          .pool_keys = pool_keys,
                          .metrics_port = metrics_port_,
                          .access_log = access_log_});
}

std::string ProxiedWorkers::scrape() const {
  return http_get(metrics_port_, "/metrics");
}

double queue_length(const std::string& scrape) {
  return metric_value(scrape, R"(scgi_queue_length{pool="app"})");
}

double in_flight(const std::string& scrape, const Address& backend) {
  return metric_value(
      scrape, R"(scgi_requests_in_flight{backend=")" + backend.to_string() + R"(",pool="app"})");
}

double outcomes(const std::string& scrape, const std::string& outcome) {
  return metric_value(scrape,
                      R"(scgi_request_outcomes_total{outcome=")" + outcome + R"(",pool="app"})");
}

double metric_sum(const std::string& scrape, const std::string& name) {
  std::istringstream in(scrape);
  double sum = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, name.size(), name) != 0 || line.size() == name.size()) continue;
    if (line[name.size()] != '{' && line[name.size()] != ' ') continue;
    const auto space = line.rfind(' ');
    sum += std::stod(line.substr(space + 1));
  }
  return sum;
}

std::vector<std::map<std::string, std::string>> access_log_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::map<std::string, std::string>> lines;
  for (std::string line; std::getline(in, line);) {
    std::map<std::string, std::string> fields;
    std::istringstream words(line);
    for (std::string word; words >> word;) {
      const auto eq = word.find('=');
      if (eq != std::string::npos) fields[word.substr(0, eq)] = word.substr(eq + 1);
    }
    lines.push_back(fields);
  }
  return lines;
}

Process start_load(const TempDir& dir, const Address& target, const std::string& duration,
                   const std::string& name, const std::vector<std::string>& extra) {
  std::vector<std::string> argv{built_binary("scgi-load"),
                                "--connect",
                                target.to_string(),
                                "--connections",
                                "8",
                                "--duration",
                                duration,
                                "--json",
                                "--timeout",
                                "10s"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Process::start(argv, dir.file(name));
}

nlohmann::json finish_load(Process& load) {
  if (!load.wait(60s)) return {};
  const std::string output = load.log();
  const auto start = output.find('{');
  if (start == std::string::npos) return {};
  return nlohmann::json::parse(output.substr(start), nullptr, false);
}

std::vector<std::string> sample_worker_command(std::vector<std::string> extra) {
  std::vector<std::string> argv{built_binary("scgi-sample-worker")};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

std::string managed_pool_config(const ManagedPool& spec, const std::string& control_socket) {
  // Tests run as root, where a pool must name its user or allow root; those
  // that do not choose a user let it run as root.
  const bool chooses_identity = spec.pool_keys.find("user =") != std::string::npos ||
                                spec.pool_keys.find("allow_root") != std::string::npos;
  std::string command = "[";
  for (std::size_t i = 0; i < spec.command.size(); ++i)
    command += (i ? ", " : "") + nlohmann::json(spec.command[i]).dump();
  command += "]";
  const std::string members = spec.backends.empty()
                                  ? "command = " + command +
                                        "\nenv = { PATH = \"/usr/local/bin:/usr/bin:/bin\" }\n" +
                                        (chooses_identity ? "" : "allow_root = true\n")
                                  : "backends = " + toml_addresses(spec.backends) + "\n";
  return "[manager]\ncontrol_socket = \"" + control_socket + "\"\n" + spec.manager_keys +
         "\n[proxy]\nthreads = 2\n[metrics]\nlisten = \"127.0.0.1:" +
         std::to_string(spec.metrics_port) + "\"\n[[pool]]\nname = \"app\"\nlisten = \"" +
         spec.listen.to_string() + "\"\n" + members + spec.pool_keys + "\n";
}

ManagerProcess::ManagerProcess(const TempDir& dir, ManagedPool spec, int ready_workers)
    : config_path_(dir.file("scgi.toml")), control_socket_(dir.file("scgi.sock")) {
  if (spec.metrics_port == 0) spec.metrics_port = free_port();
  metrics_port_ = spec.metrics_port;
  dir.write("scgi.toml", managed_pool_config(spec, control_socket_));
  const std::string program = spec.program.empty() ? built_binary("scgi-manager") : spec.program;
  process_ = Process::start({program, "--config", config_path_}, dir.file("manager.log"));
  if (!wait_until_accepting(spec.listen) ||
      (spec.backends.empty() && !wait_workers("ready", ready_workers)))
    throw std::runtime_error("scgi-manager did not start: " + process_.log());
}

CtlRun run_scgictl(const TempDir& dir, const std::vector<std::string>& arguments,
                   const CtlOptions& options) {
  static std::atomic<int> runs = 0;
  const std::string name = "scgictl-" + std::to_string(++runs);
  std::vector<std::string> argv = options.prefix;
  argv.push_back(built_binary("scgictl"));
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  Process process =
      Process::start(argv, dir.file(name + ".out"), options.env, dir.file(name + ".err"));
  const auto status = process.wait(options.timeout);
  if (!status) process.stop(SIGKILL, 1s);
  CtlRun run;
  if (status && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
  run.out = process.log();
  std::ifstream err(dir.file(name + ".err"));
  std::stringstream text;
  text << err.rdbuf();
  run.err = text.str();
  return run;
}

CtlRun scgictl(const TempDir& dir, const ManagerProcess& manager,
               const std::vector<std::string>& arguments, const CtlOptions& options) {
  std::vector<std::string> with_socket{"--socket", manager.control_socket()};
  with_socket.insert(with_socket.end(), arguments.begin(), arguments.end());
  return run_scgictl(dir, with_socket, options);
}

std::vector<std::string> scgictl_command(const ManagerProcess& manager,
                                         const std::vector<std::string>& arguments) {
  std::vector<std::string> argv{built_binary("scgictl"), "--socket", manager.control_socket()};
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  return argv;
}

std::string ManagerProcess::scrape() const {
  return http_get(metrics_port_, "/metrics");
}

double ManagerProcess::workers(const std::string& state) const {
  return metric_value(scrape(), "scgi_workers{pool=\"app\",state=\"" + state + "\"}");
}

double ManagerProcess::restarts(const std::string& reason) const {
  return metric_value(scrape(),
                      "scgi_worker_restarts_total{pool=\"app\",reason=\"" + reason + "\"}");
}

double ManagerProcess::served() const {
  return outcomes(scrape(), "served");
}

bool ManagerProcess::wait_workers(const std::string& state, int count,
                                  std::chrono::milliseconds timeout) {
  return eventually([&] { return workers(state) == count; }, timeout);
}

std::set<pid_t> ManagerProcess::worker_pids() const {
  return child_pids(process_.pid());
}

std::set<pid_t> child_pids(pid_t parent) {
  std::set<pid_t> children;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && state != "Z") children.insert(std::stoi(name));
  }
  return children;
}

bool process_exists(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const auto close = stat.rfind(')');
  return close != std::string::npos && stat.substr(close + 2, 1) != "Z";
}

}  // namespace scgi::test
