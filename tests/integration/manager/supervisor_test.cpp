// scgi-manager for real: worker pools of the sample worker (and the Python
// sample) behind the in-process balancer, killed, crashing, slow, stuck,
// recycled, scaled and stopped, with requests flowing through all of it.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// The X-Worker-Pid of `count` GET requests to `listen` (each must be a 200).
std::multiset<std::string> answering_pids(const Address& listen, int count,
                                          const std::string& uri = "/") {
  std::multiset<std::string> pids;
  for (int i = 0; i < count; ++i) {
    const Response response = send_request(listen, get_request(uri));
    INFO(response.bytes);
    REQUIRE(response.status() == 200);
    pids.insert(response.header("X-Worker-Pid"));
  }
  return pids;
}

std::size_t distinct(const std::multiset<std::string>& values) {
  return std::set<std::string>(values.begin(), values.end()).size();
}

// A command that runs `script` with Python, then becomes the sample worker
// (exec keeps the pid, fd 3 and LISTEN_PID valid).
std::vector<std::string> python_then_sample_worker(const std::string& script) {
  return {"python3", "-c", "import os, sys\n" + script + "\nos.execv(sys.argv[1], sys.argv[1:])\n",
          built_binary("scgi-sample-worker")};
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("each socket mode serves through the manager and leaves nothing behind",
          "[manager][supervisor]") {
  struct Mode {
    const char* name;
    std::vector<std::string> extra;
  };
  for (const Mode& mode : {Mode{"inherit", {}}, Mode{"port", {"--port", "{port}"}},
                           Mode{"unix", {"--unix", "{socket}"}}}) {
    DYNAMIC_SECTION("socket = " << mode.name) {
      TempDir dir;
      const Address listen = loopback(free_port());
      ManagerProcess manager(
          dir,
          {.listen = listen,
           .command = sample_worker_command(mode.extra),
           .pool_keys = "workers = 3\nsocket = \"" + std::string(mode.name) + "\""},
          3);
      const std::set<pid_t> workers = manager.worker_pids();
      REQUIRE(workers.size() == 3);
      // Least busy with ties rotating: sequential requests visit every worker.
      CHECK(distinct(answering_pids(listen, 30)) == 3);

      const int status = manager.process().stop(SIGTERM, 20s);
      INFO(manager.process().log());
      CHECK(exited_with(status, 0));
      for (const pid_t pid : workers)
        CHECK_FALSE(process_exists(pid));
      CHECK_FALSE(std::filesystem::exists(manager.control_socket()));
      // Its runtime folder (the workers' Unix sockets) is gone too.
      const std::string log = manager.process().log();
      std::smatch runtime;
      if (std::regex_search(log, runtime, std::regex("on unix:(/[^ \n]*)/app/app-")))
        CHECK_FALSE(std::filesystem::exists(runtime[1].str()));
    }
  }
}

// The real user ids of a process ("Uid:" of /proc/PID/status: real, effective, saved, fs).
std::string uids_of(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Uid:", 0) == 0) return line.substr(4);
  return {};
}

TEST_CASE("a pool on Unix sockets runs its workers as its user", "[manager][supervisor]") {
  if (::geteuid() != 0) {
    WARN("needs root to switch users: not run");
    return;
  }
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command({"--unix", "{socket}"}),
                          .pool_keys = "workers = 2\nsocket = \"unix\"\nuser = \"nobody\""},
                         2);
  INFO(manager.process().log());
  const std::set<pid_t> workers = manager.worker_pids();
  REQUIRE(workers.size() == 2);
  for (const pid_t pid : workers)
    CHECK(std::regex_match(uids_of(pid), std::regex("\\s*65534\\s+65534\\s+65534\\s+65534\\s*")));
  CHECK(distinct(answering_pids(listen, 10)) == 2);
}

TEST_CASE("the Python and Perl sample workers run under the manager, inherited and on a port",
          "[manager][supervisor][python][perl]") {
  const std::string workers = std::string(SCGI_SOURCE_DIR) + "/deploy/examples/workers/";
  for (const std::string interpreter : {"python3", "perl"}) {
    const std::string script = workers + (interpreter == "perl" ? "hello.pl" : "hello.py");
    for (const bool inherit : {true, false}) {
      DYNAMIC_SECTION(interpreter << ", inherit " << inherit) {
        TempDir dir;
        const Address listen = loopback(free_port());
        std::vector<std::string> command{interpreter, script};
        if (!inherit) command.insert(command.end(), {"--port", "{port}"});
        ManagerProcess manager(dir,
                               {.listen = listen,
                                .command = command,
                                .pool_keys = std::string("workers = 2\nsocket = \"") +
                                             (inherit ? "inherit" : "port") + "\""},
                               2);
        std::set<std::string> pids;
        for (int i = 0; i < 6; ++i) {
          const Response response = send_request(listen, get_request("/hello"));
          INFO(response.bytes);
          REQUIRE(response.status() == 200);
          CHECK(response.body().find("app") != std::string::npos);
          pids.insert(response.header("X-Worker-Pid"));
        }
        CHECK(pids.size() == 2);  // both workers served
        // The readiness probe (a connection without a byte) is no error to them.
        CHECK(manager.process().log().find("rror") == std::string::npos);
        CHECK(exited_with(manager.process().stop(SIGTERM, 20s), 0));
      }
    }
  }
}

TEST_CASE("a worker killed under load is replaced and only its request in flight can fail",
          "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 4"}, 4);
  Process load = start_load(dir, listen, "3s", "load.json", {"--query", "sleep_ms=5"});
  REQUIRE(eventually([&] { return manager.served() >= 50; }));
  const std::set<pid_t> before = manager.worker_pids();
  REQUIRE(before.size() == 4);
  const pid_t victim = *before.begin();
  ::kill(victim, SIGKILL);
  CHECK(manager.wait_workers("ready", 4, 10s));
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 100);
  // Concurrency 1: at most the one request the worker was serving.
  CHECK(report["errors"].get<int>() <= 1);
  CHECK(manager.restarts("signal") == 1);
  const std::set<pid_t> after = manager.worker_pids();
  CHECK(after.size() == 4);
  CHECK_FALSE(after.count(victim));
}

TEST_CASE("a crash loop backs off, marks the pool failing, and recovers by itself",
          "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // Fails its first six starts, then serves.
  const std::string counter = dir.file("starts");
  const auto command =
      python_then_sample_worker("p = '" + counter +
                                "'\n"
                                "n = sum(1 for _ in open(p)) if os.path.exists(p) else 0\n"
                                "open(p, 'a').write('x\\n')\n"
                                "if n < 6: sys.exit(3)");
  ManagedPool spec{.listen = listen,
                   .command = command,
                   .pool_keys = "workers = 1\nrestart_backoff = [\"50ms\", \"400ms\"]"};
  ManagerProcess manager(dir, spec, 0);
  const std::string failing = "scgi_pool_failing{pool=\"app\"}";
  CHECK(eventually([&] { return metric_value(manager.scrape(), failing) == 1; }, 15s));
  CHECK(manager.wait_workers("ready", 1, 15s));
  CHECK(manager.restarts("exit") >= 6);
  // The backoff doubled (50, 100, 200, 400, 400 ms…) rather than spinning.
  const std::string log = manager.process().log();
  CHECK(log.find("restarting in 400ms") != std::string::npos);
  CHECK(log.find("pool app: failing") != std::string::npos);
  CHECK(send_request(listen, get_request("/")).status() == 200);
  // A worker that stays up 10 s clears the verdict.
  CHECK(eventually([&] { return metric_value(manager.scrape(), failing) == 0; }, 15s));
  CHECK(manager.process().log().find("pool app: recovered") != std::string::npos);
}

TEST_CASE("a slow-starting worker gets no request before it is ready", "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // Worker 1 does not start before the test opens `gate` (a FIFO); worker 0
  // is ready at once.
  const std::string gate = dir.file("gate");
  REQUIRE(::mkfifo(gate.c_str(), 0600) == 0);
  const auto command = python_then_sample_worker("if os.environ['SCGI_WORKER'] == '1': open('" +
                                                 gate + "').close()");
  ManagerProcess manager(dir, {.listen = listen, .command = command, .pool_keys = "workers = 2"},
                         1);
  // Had one been routed to worker 1 (whose inherited socket queues it), it
  // would wait for its start, which waits for the test: no answer.
  const auto pids = answering_pids(listen, 10);
  CHECK(distinct(pids) == 1);
  CHECK(manager.workers("starting") == 1);
  REQUIRE(eventually([&] {  // worker 1 waits in open(): this lets it go on
    const int fd = ::open(gate.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
  }));
  REQUIRE(manager.wait_workers("ready", 2, 10s));
  CHECK(distinct(answering_pids(listen, 10)) == 2);
}

TEST_CASE("recycling by max_requests under load fails no request", "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 2\nmax_requests = 100"},
                         2);
  const std::set<pid_t> first = manager.worker_pids();
  Process load = start_load(dir, listen, "4s", "load.json", {"--query", "sleep_ms=2"});
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 500);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(manager.restarts("recycle") >= 2);
  CHECK(manager.wait_workers("ready", 2, 10s));
  for (const pid_t pid : first)
    CHECK_FALSE(manager.worker_pids().count(pid));
}

TEST_CASE("recycling by max_rss under load fails no request", "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 2\nmax_rss = \"64MiB\""},
                         2);
  // Every request leaks 512 KiB: a worker passes 64 MiB after ~130 requests.
  Process load =
      start_load(dir, listen, "5s", "load.json", {"--rate", "120", "--query", "grow_kb=512"});
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 400);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(manager.restarts("recycle") >= 1);
  CHECK(manager.process().log().find("(max_rss") != std::string::npos);
}

TEST_CASE("a stuck worker answers 504 and is recycled", "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir,
      {.listen = listen,
       .command = sample_worker_command(),
       .pool_keys = "workers = 1\nrequest_timeout = \"500ms\"\nstop_timeout = \"500ms\""},
      1);
  const std::set<pid_t> before = manager.worker_pids();
  const Response response = send_request(listen, get_request("/stuck?sleep_ms=20000"));
  CHECK(response.status() == 504);
  CHECK(eventually([&] { return manager.restarts("health") == 1; }, 5s));
  CHECK(eventually(
      [&] {
        const auto now = manager.worker_pids();
        return now.size() == 1 && now != before;
      },
      10s));
  CHECK(send_request(listen, get_request("/")).status() == 200);
  const std::string log = manager.process().log();
  CHECK(log.find("is stuck: \"/stuck?sleep_ms=20000\" got no answer") != std::string::npos);
}

TEST_CASE("stopping escalates to SIGKILL after stop_timeout", "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 1\nstop_timeout = \"500ms\"",
                          .manager_keys = "shutdown_timeout = \"300ms\""},
                         1);
  const std::set<pid_t> workers = manager.worker_pids();
  // The sample worker finishes its request before obeying SIGTERM: 20 s here.
  const int client = connect_to(listen);
  REQUIRE(client >= 0);
  const std::string request = get_request("/?sleep_ms=20000");
  REQUIRE(::write(client, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  REQUIRE(
      eventually([&] { return metric_sum(manager.scrape(), "scgi_requests_in_flight") == 1; }, 5s));
  manager.process().signal(SIGTERM);
  // Only the SIGKILL ends the worker within 10 s: it would hold on for 20.
  const auto status = manager.process().wait(10s);
  ::close(client);
  INFO(manager.process().log());
  REQUIRE(status.has_value());
  CHECK(exited_with(*status, 0));
  CHECK(manager.process().log().find("SIGKILL") != std::string::npos);
  for (const pid_t pid : workers)
    CHECK_FALSE(process_exists(pid));
}

TEST_CASE("a manager killed with SIGKILL leaves no worker behind", "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 3"}, 3);
  const std::set<pid_t> workers = manager.worker_pids();
  REQUIRE(workers.size() == 3);
  manager.process().stop(SIGKILL);
  CHECK(eventually(
      [&] {
        return std::none_of(workers.begin(), workers.end(),
                            [](pid_t p) { return process_exists(p); });
      },
      5s));
}

TEST_CASE("worker output is captured whole: long lines and binary junk", "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  const auto command = python_then_sample_worker(
      "sys.stdout.write('x' * 100000 + '\\n')\n"
      "sys.stdout.flush()\n"
      "os.write(1, bytes(range(256)) + b'\\n')\n"
      "os.write(2, b'to stderr\\n')");
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = command,
                          .pool_keys = "workers = 1",
                          .manager_keys = "log_dir = \"" + dir.file("logs") + "\""},
                         1);
  const std::string path = dir.file("logs/app.log");
  REQUIRE(eventually([&] { return file_text(path).find("to stderr") != std::string::npos; }, 5s));
  const std::string text = file_text(path);
  // Every line has the prefix; the long line comes in pieces that add up.
  std::istringstream lines(text);
  std::string line;
  std::size_t xs = 0;
  bool binary_seen = false;
  while (std::getline(lines, line)) {
    INFO(line.substr(0, 200));
    CHECK(std::regex_search(line, std::regex(R"(^\d{4}-\d\d-\d\dT[\d:.]+Z app\[0\] \d+\+?\| )")));
    const auto bar = line.find("| ");
    const std::string content = line.substr(bar + 2);
    if (content.find_first_not_of('x') == std::string::npos) xs += content.size();
    if (content.find("\\x01\\x02") != std::string::npos) binary_seen = true;
    for (const char c : line)
      CHECK((static_cast<unsigned char>(c) >= 0x20 || c == '\t'));
  }
  CHECK(xs == 100000);
  CHECK(binary_seen);
}

TEST_CASE("a dynamic pool grows while requests wait and shrinks when idle",
          "[manager][supervisor][scaling]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "min_workers = 1\nmax_workers = 4\nidle_timeout = \"1s\""},
                         1);
  Process load = start_load(dir, listen, "3s", "load.json", {"--query", "sleep_ms=50"});
  CHECK(manager.wait_workers("ready", 4, 5s));
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  CHECK(report["errors"].get<int>() == 0);
  // One step down per idle_timeout, never below min_workers.
  CHECK(manager.wait_workers("ready", 1, 10s));
  // A step below would come within an idle_timeout.
  CHECK(holds_for([&] { return manager.workers("ready") == 1; }, 1500ms));
  const std::string log = manager.process().log();
  CHECK(log.find("growing to 4 workers") != std::string::npos);
  CHECK(log.find("shrinking to 1 workers") != std::string::npos);
}

TEST_CASE("a worker that never accepts fails to start at ready_timeout and is retried",
          "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // Runs, but never binds the port it is given (sleep takes it for seconds).
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = {"sleep", "60", "{port}"},
                          .pool_keys = "workers = 1\nsocket = \"port\"\nready_timeout = "
                                       "\"300ms\"\nrestart_backoff = [\"100ms\", \"200ms\"]"},
                         0);
  CHECK(eventually([&] { return manager.restarts("health") >= 2; }, 10s));
  CHECK(manager.workers("ready") == 0);
  const std::string log = manager.process().log();
  CHECK(log.find("did not accept connections within ready_timeout (300ms)") != std::string::npos);
  // The failed starts were killed: at most the current attempt runs.
  CHECK(manager.worker_pids().size() <= 1);
}

TEST_CASE("SIGHUP resizes the pool and rolls it onto a new command without a failed request",
          "[manager][supervisor][reload]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagedPool spec{
      .listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"};
  ManagerProcess manager(dir, spec, 2);
  const std::set<pid_t> first = manager.worker_pids();
  Process load = start_load(dir, listen, "5s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return manager.served() >= 50; }));
  // Three workers, and a new command line (a name): every worker is replaced, one at a time.
  spec.metrics_port = manager.metrics_port();
  spec.pool_keys = "workers = 3";
  spec.command = sample_worker_command({"--name", "v2"});
  dir.write("scgi.toml", managed_pool_config(spec, manager.control_socket()));
  manager.process().signal(SIGHUP);
  CHECK(eventually(
      [&] {
        const auto now = manager.worker_pids();
        return now.size() == 3 &&
               std::none_of(first.begin(), first.end(), [&](pid_t p) { return now.count(p) > 0; });
      },
      10s));
  // A broken file is reported and changes nothing.
  dir.write("scgi.toml", "[[pool]]\nname = 42\n");
  manager.process().signal(SIGHUP);
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 300);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(manager.workers("ready") == 3);
  const Response response = send_request(listen, get_request("/"));
  CHECK(response.header("X-Worker-Name") == "v2");
  CHECK(manager.process().log().find("the running configuration stays") != std::string::npos);
}

TEST_CASE("SIGUSR1 reopens the worker log files after they were moved", "[manager][supervisor]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command({"--verbose"}),
                          .pool_keys = "workers = 1",
                          .manager_keys = "log_dir = \"" + dir.file("logs") + "\""},
                         1);
  const std::string path = dir.file("logs/app.log");
  REQUIRE(eventually([&] { return std::filesystem::exists(path); }, 5s));
  std::filesystem::rename(path, path + ".old");
  const pid_t pid = *manager.worker_pids().begin();
  manager.process().signal(SIGUSR1);
  // A file is opened again by its path at the pool's next line, once the
  // signal is handled: a request at a time until one's line is in a new file.
  int sent = 0;
  CHECK(eventually(
      [&] {
        const std::string uri = "/after-rotation-" + std::to_string(++sent);
        return send_request(listen, get_request(uri)).status() == 200 &&
               file_text(path).find("/after-rotation-") != std::string::npos;
      },
      5s));
  CHECK(process_exists(pid));  // the worker was not touched
}

TEST_CASE("a shutdown_timeout changed by a reload is the one the next stop uses",
          "[manager][supervisor][reload]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagedPool spec{.listen = listen,
                   .command = sample_worker_command(),
                   .pool_keys = "workers = 1\nstop_timeout = \"500ms\"",
                   .manager_keys = "shutdown_timeout = \"60s\""};
  ManagerProcess manager(dir, spec, 1);
  spec.metrics_port = manager.metrics_port();
  spec.manager_keys = "shutdown_timeout = \"300ms\"";
  dir.write("scgi.toml", managed_pool_config(spec, manager.control_socket()));
  manager.process().signal(SIGHUP);
  REQUIRE(eventually([&] { return manager.process().log().find("reload: ") != std::string::npos; },
                     10s));
  // A request that would outlast the old timeout by far.
  const int client = connect_to(listen);
  REQUIRE(client >= 0);
  const std::string request = get_request("/?sleep_ms=20000");
  REQUIRE(::write(client, request.data(), request.size()) == static_cast<ssize_t>(request.size()));
  // In flight on the worker (its one series reads 1) before the stop.
  REQUIRE(
      eventually([&] { return metric_sum(manager.scrape(), "scgi_requests_in_flight") == 1; }, 5s));
  manager.process().signal(SIGTERM);
  // 300 ms for the request, then the worker's stop: far below the old 60 s.
  const auto status = manager.process().wait(15s);
  ::close(client);
  INFO(manager.process().log());
  REQUIRE(status.has_value());
  CHECK(exited_with(*status, 0));
  CHECK(manager.process().log().find("shutdown_timeout (300ms) passed") != std::string::npos);
}

TEST_CASE("a worker's metric series is its slot's: a restart starts no new one",
          "[manager][supervisor][metrics]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // socket = "port": every worker gets a new address, as in unix mode.
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command({"--port", "{port}"}),
                          .pool_keys = "workers = 2\nsocket = \"port\""},
                         2);
  const auto series_count = [](const std::string& scrape) {
    std::size_t count = 0;
    for (std::size_t at = scrape.find("\nscgi_backend_up{"); at != std::string::npos;
         at = scrape.find("\nscgi_backend_up{", at + 1))
      ++count;
    return count;
  };
  REQUIRE(send_request(listen, get_request("/one")).status() == 200);
  std::string scrape = manager.scrape();
  CHECK(
      metric_value(scrape, fmt::format(R"(scgi_build_info{{program="scgi-manager",version="{}"}})",
                                       SCGI_VERSION)) == 1);
  CHECK(metric_value(scrape, R"(scgi_backend_up{backend="app:0",pool="app"})") == 1);
  CHECK(metric_value(scrape, R"(scgi_backend_up{backend="app:1",pool="app"})") == 1);
  CHECK(series_count(scrape) == 2);
  const std::set<pid_t> before = manager.worker_pids();
  ::kill(*before.begin(), SIGKILL);
  // Its replacement, on a new port, is routed under the same series.
  REQUIRE(eventually([&] { return manager.restarts("signal") == 1; }, 10s));
  REQUIRE(eventually(
      [&] {
        scrape = manager.scrape();
        return metric_value(scrape, R"(scgi_backend_up{backend="app:0",pool="app"})") == 1 &&
               metric_value(scrape, R"(scgi_backend_up{backend="app:1",pool="app"})") == 1;
      },
      10s));
  INFO(scrape);
  CHECK(series_count(scrape) == 2);
  CHECK_FALSE(manager.worker_pids().count(*before.begin()));
}
