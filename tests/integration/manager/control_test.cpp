// scgictl against a real scgi-manager over its control socket: status,
// stop/start, scale, drain, logs, and who may use it.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <sstream>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

TEST_CASE("scgictl status shows every worker of the pool", "[manager][control]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 3"}, 3);
  const CtlRun table = scgictl(dir, manager, {"status"});
  INFO(table.out << table.err);
  CHECK(table.exit_code == 0);
  CHECK(table.out.find("3/3") != std::string::npos);
  for (const pid_t pid : manager.worker_pids())
    CHECK(table.out.find(std::to_string(pid)) != std::string::npos);

  const CtlRun json = scgictl(dir, manager, {"--json", "status", "app"});
  INFO(json.out << json.err);
  CHECK(json.exit_code == 0);
  const auto reply = nlohmann::json::parse(json.out.substr(json.out.find('{')));
  CHECK(reply.dump().find("\"state\":\"ready\"") != std::string::npos);

  const CtlRun unknown = scgictl(dir, manager, {"status", "nope"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("no pool 'nope'; pools are: app") != std::string::npos);
}

TEST_CASE("scgictl stops a worker until started, scales, drains and shows logs",
          "[manager][control]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 2\nqueue_timeout = \"30s\""},
                         2);
  CHECK(scgictl(dir, manager, {"stop", "app:1"}).exit_code == 0);
  CHECK(manager.wait_workers("stopped", 1, 10s));
  // Stopped by hand: it stays stopped, and the scaler does not fill its place
  // (a slot wanted up would come back at once; the scaler looks every 100 ms).
  CHECK(holds_for(
      [&] { return manager.workers("ready") == 1 && manager.worker_pids().size() == 1; }, 500ms));
  CHECK(scgictl(dir, manager, {"start", "app:1"}).exit_code == 0);
  CHECK(manager.wait_workers("ready", 2, 10s));

  CHECK(scgictl(dir, manager, {"scale", "app", "4"}).exit_code == 0);
  CHECK(manager.wait_workers("ready", 4, 10s));
  CHECK(scgictl(dir, manager, {"scale", "app", "1"}).exit_code == 0);
  CHECK(manager.wait_workers("ready", 1, 10s));
  CHECK(eventually([&] { return manager.worker_pids().size() == 1; }, 10s));

  const CtlRun drained = scgictl(dir, manager, {"drain", "--wait", "app:0"});
  INFO(drained.out << drained.err);
  CHECK(drained.exit_code == 0);
  // The only worker is drained: a request waits in the queue until undrained.
  auto waiting =
      std::async(std::launch::async, [&] { return send_request(listen, get_request("/"), 40s); });
  CHECK(eventually([&] { return queue_length(manager.scrape()) == 1; }));
  CHECK(waiting.wait_for(0s) == std::future_status::timeout);
  CHECK(scgictl(dir, manager, {"undrain", "app:0"}).exit_code == 0);
  CHECK(waiting.get().status() == 200);

  const CtlRun logs = scgictl(dir, manager, {"logs", "app", "-n", "5"});
  INFO(logs.out << logs.err);
  CHECK(logs.exit_code == 0);
  CHECK(logs.out.find("app[0]") != std::string::npos);

  const CtlRun bad = scgictl(dir, manager, {"stop", "app:9"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("no worker 9") != std::string::npos);
}

TEST_CASE("the control socket is the owner's only, and a refused user is told why",
          "[manager][control]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 1"}, 1);
  struct stat info {};
  REQUIRE(::stat(manager.control_socket().c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  // The temp dir must be searchable for another user to reach the socket at all.
  std::filesystem::permissions(dir.path(), std::filesystem::perms::others_exec,
                               std::filesystem::perm_options::add);
  const std::vector<std::string> nobody{"setpriv", "--reuid=65534", "--regid=65534",
                                        "--clear-groups"};
  const CtlRun refused = scgictl(dir, manager, {"status"}, {.prefix = nobody});
  INFO(refused.out << refused.err);
  CHECK(refused.exit_code == 3);
  CHECK(refused.err.find("ermission denied") != std::string::npos);
  // Even with the file opened up, the manager checks the peer's uid itself.
  std::filesystem::permissions(manager.control_socket(), std::filesystem::perms::all);
  const CtlRun checked = scgictl(dir, manager, {"status"}, {.prefix = nobody});
  INFO(checked.out << checked.err);
  CHECK(checked.exit_code != 0);
  CHECK(checked.err.find("uid 65534") != std::string::npos);
  CHECK(manager.process().running());
}

TEST_CASE("malformed control messages get an error reply and harm nothing", "[manager][control]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 1"}, 1);
  const Address control{Address::Kind::unix_socket, {}, 0, manager.control_socket()};
  const int fd = connect_to(control);
  REQUIRE(fd >= 0);
  // Each line gets one reply line; the connection stays usable.
  const std::string lines =
      "this is not json\n[1,2]\n{\"command\":\"fly\"}\n"
      "{\"command\":\"status\",\"id\":7}\n";
  REQUIRE(::write(fd, lines.data(), lines.size()) == static_cast<ssize_t>(lines.size()));
  std::string received;
  char buffer[4096];
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::count(received.begin(), received.end(), '\n') < 4 &&
         std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) break;
    received.append(buffer, static_cast<std::size_t>(n));
  }
  // An oversized line is refused and ends the connection.
  const std::string huge(100 * 1024, 'x');
  ::write(fd, huge.data(), huge.size());
  ::close(fd);
  INFO(received);
  std::istringstream replies(received);
  std::string line;
  std::vector<nlohmann::json> parsed;
  while (std::getline(replies, line))
    parsed.push_back(nlohmann::json::parse(line));
  REQUIRE(parsed.size() == 4);
  for (int i = 0; i < 3; ++i) {
    CHECK(parsed[i]["ok"] == false);
    CHECK_FALSE(parsed[i]["error"].get<std::string>().empty());
  }
  CHECK(parsed[2]["error"].get<std::string>().find("fly") != std::string::npos);
  CHECK(parsed[3]["ok"] == true);
  CHECK(parsed[3]["id"] == 7);
  // The daemon is unharmed.
  CHECK(manager.process().running());
  CHECK(scgictl(dir, manager, {"status"}).exit_code == 0);
  CHECK(send_request(listen, get_request("/")).status() == 200);
}

// --- Operations under continuous load: each must fail no request. ---

TEST_CASE("a rolling restart of the pool and of one worker under load fails no request",
          "[manager][control][zero-downtime]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 3"}, 3);
  const std::set<pid_t> first = manager.worker_pids();
  Process load = start_load(dir, listen, "6s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return manager.served() >= 50; }));
  const CtlRun pool = scgictl(dir, manager, {"restart", "app"});
  INFO(pool.out << pool.err);
  CHECK(pool.exit_code == 0);
  CHECK(pool.out.find("restarted 3 of 3") != std::string::npos);
  const std::set<pid_t> second = manager.worker_pids();
  CHECK(second.size() == 3);
  for (const pid_t pid : first)
    CHECK_FALSE(second.count(pid));
  const CtlRun one = scgictl(dir, manager, {"restart", "app:1"});
  INFO(one.out << one.err);
  CHECK(one.exit_code == 0);
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 500);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(manager.restarts("recycle") == 4);
}

TEST_CASE("scgictl reload with a new command and new sizes under load fails no request",
          "[manager][control][zero-downtime]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagedPool spec{
      .listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 3"};
  ManagerProcess manager(dir, spec, 3);
  const std::set<pid_t> first = manager.worker_pids();
  Process load = start_load(dir, listen, "7s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return manager.served() >= 50; }));

  spec.metrics_port = manager.metrics_port();
  spec.command = sample_worker_command({"--name", "v2"});
  spec.pool_keys = "workers = 4";
  dir.write("scgi.toml", managed_pool_config(spec, manager.control_socket()));
  const CtlRun grown = scgictl(dir, manager, {"reload"});
  INFO(grown.out << grown.err);
  CHECK(grown.exit_code == 0);
  CHECK(grown.out.find("pool app: workers 3 → 4; command changed: rolling restart onto it") !=
        std::string::npos);
  CHECK(eventually(
      [&] {
        const auto now = manager.worker_pids();
        return now.size() == 4 &&
               std::none_of(first.begin(), first.end(), [&](pid_t p) { return now.count(p) > 0; });
      },
      15s));

  spec.pool_keys = "workers = 2";
  dir.write("scgi.toml", managed_pool_config(spec, manager.control_socket()));
  const CtlRun shrunk = scgictl(dir, manager, {"reload"});
  INFO(shrunk.out << shrunk.err);
  CHECK(shrunk.out.find("pool app: workers 4 → 2") != std::string::npos);
  CHECK(eventually([&] { return manager.worker_pids().size() == 2; }, 15s));

  // A file with errors changes nothing and says why.
  dir.write("scgi.toml", "[[pool]]\nname = \"app\"\nworkers = \"many\"\n");
  const CtlRun broken = scgictl(dir, manager, {"reload"});
  CHECK(broken.exit_code == 1);
  CHECK(broken.err.find("the running configuration stays") != std::string::npos);

  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 500);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(send_request(listen, get_request("/")).header("X-Worker-Name") == "v2");
}

TEST_CASE("scgictl scale up and down under load fails no request",
          "[manager][control][zero-downtime]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);
  Process load = start_load(dir, listen, "5s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return manager.served() >= 50; }));
  CHECK(scgictl(dir, manager, {"scale", "app", "5"}).exit_code == 0);
  CHECK(manager.wait_workers("ready", 5, 10s));
  // The load goes on over the five before they shrink.
  const double served_by_five = manager.served();
  REQUIRE(eventually([&] { return manager.served() >= served_by_five + 100; }));
  CHECK(scgictl(dir, manager, {"scale", "app", "1"}).exit_code == 0);
  CHECK(eventually([&] { return manager.worker_pids().size() == 1; }, 10s));
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  INFO(manager.process().log());
  CHECK(report["requests"].get<int>() > 500);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(manager.workers("ready") == 1);
}

TEST_CASE("a restart whose replacement cannot start stops and keeps the old worker",
          "[manager][control][zero-downtime]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // Each worker index starts once; a second start of it fails.
  const std::string marks = dir.file("started-");
  const std::vector<std::string> command{"python3", "-c",
                                         "import os, sys\n"
                                         "mark = '" +
                                             marks +
                                             "' + os.environ['SCGI_WORKER']\n"
                                             "if os.path.exists(mark): sys.exit(4)\n"
                                             "open(mark, 'w').close()\n"
                                             "os.execv(sys.argv[1], sys.argv[1:])\n",
                                         built_binary("scgi-sample-worker")};
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = command,
                          .pool_keys = "workers = 2\nrestart_backoff = [\"100ms\", \"200ms\"]"},
                         2);
  const std::set<pid_t> before = manager.worker_pids();
  const CtlRun restart = scgictl(dir, manager, {"restart", "app"});
  INFO(restart.out << restart.err);
  INFO(manager.process().log());
  CHECK(restart.exit_code == 1);
  CHECK(restart.err.find("did not become ready") != std::string::npos);
  CHECK(restart.err.find("keeps serving") != std::string::npos);
  CHECK(manager.worker_pids() == before);
  CHECK(manager.workers("ready") == 2);
  CHECK(send_request(listen, get_request("/")).status() == 200);
}
