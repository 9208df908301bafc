// scgictl against a real scgi-manager over its control socket: status,
// stop/start, scale, drain, logs, and who may use it.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <thread>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

struct CtlResult {
  int exit_code = -1;
  std::string output;
};

// Runs scgictl (optionally through `prefix`, e.g. setpriv) and waits for it.
CtlResult scgictl(const TempDir& dir, const ManagerProcess& manager,
                  std::vector<std::string> arguments, std::vector<std::string> prefix = {}) {
  static int runs = 0;
  std::vector<std::string> argv = prefix;
  argv.push_back(built_binary("scgictl"));
  argv.insert(argv.end(), {"--socket", manager.control_socket()});
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  Process process = Process::start(argv, dir.file("scgictl-" + std::to_string(++runs) + ".out"));
  const auto status = process.wait(30s);
  CtlResult result;
  result.output = process.log();
  if (status && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  return result;
}

}  // namespace

TEST_CASE("scgictl status shows every worker of the pool", "[manager][control]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 3"}, 3);
  const CtlResult table = scgictl(dir, manager, {"status"});
  INFO(table.output);
  CHECK(table.exit_code == 0);
  CHECK(table.output.find("3/3") != std::string::npos);
  for (const pid_t pid : manager.worker_pids())
    CHECK(table.output.find(std::to_string(pid)) != std::string::npos);

  const CtlResult json = scgictl(dir, manager, {"--json", "status", "app"});
  INFO(json.output);
  CHECK(json.exit_code == 0);
  const auto reply = nlohmann::json::parse(json.output.substr(json.output.find('{')));
  CHECK(reply.dump().find("\"state\":\"ready\"") != std::string::npos);

  const CtlResult unknown = scgictl(dir, manager, {"status", "nope"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.output.find("no pool named \"nope\"") != std::string::npos);
}

TEST_CASE("scgictl stops a worker until started, scales, drains and shows logs",
          "[manager][control]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);
  CHECK(scgictl(dir, manager, {"stop", "app:1"}).exit_code == 0);
  CHECK(manager.wait_workers("stopped", 1, 10s));
  // Stopped by hand: it stays stopped, and the scaler does not fill its place.
  std::this_thread::sleep_for(500ms);
  CHECK(manager.workers("ready") == 1);
  CHECK(manager.worker_pids().size() == 1);
  CHECK(scgictl(dir, manager, {"start", "app:1"}).exit_code == 0);
  CHECK(manager.wait_workers("ready", 2, 10s));

  CHECK(scgictl(dir, manager, {"scale", "app", "4"}).exit_code == 0);
  CHECK(manager.wait_workers("ready", 4, 10s));
  CHECK(scgictl(dir, manager, {"scale", "app", "1"}).exit_code == 0);
  CHECK(manager.wait_workers("ready", 1, 10s));
  CHECK(eventually([&] { return manager.worker_pids().size() == 1; }, 10s));

  const CtlResult drained = scgictl(dir, manager, {"drain", "--wait", "app:0"});
  INFO(drained.output);
  CHECK(drained.exit_code == 0);
  // The only worker is drained: a request waits in the queue until undrained.
  std::thread undrain([&] {
    std::this_thread::sleep_for(300ms);
    scgictl(dir, manager, {"undrain", "app:0"});
  });
  const auto started = std::chrono::steady_clock::now();
  CHECK(send_request(listen, get_request("/")).status() == 200);
  CHECK(std::chrono::steady_clock::now() - started >= 250ms);
  undrain.join();

  const CtlResult logs = scgictl(dir, manager, {"logs", "app", "-n", "5"});
  INFO(logs.output);
  CHECK(logs.exit_code == 0);
  CHECK(logs.output.find("app[0]") != std::string::npos);

  const CtlResult bad = scgictl(dir, manager, {"stop", "app:9"});
  CHECK(bad.exit_code == 1);
  CHECK(bad.output.find("no worker 9") != std::string::npos);
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
  const CtlResult refused = scgictl(dir, manager, {"status"}, nobody);
  INFO(refused.output);
  CHECK(refused.exit_code == 3);
  CHECK(refused.output.find("ermission denied") != std::string::npos);
  // Even with the file opened up, the manager checks the peer's uid itself.
  std::filesystem::permissions(manager.control_socket(), std::filesystem::perms::all);
  const CtlResult checked = scgictl(dir, manager, {"status"}, nobody);
  INFO(checked.output);
  CHECK(checked.exit_code != 0);
  CHECK(checked.output.find("uid 65534") != std::string::npos);
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
