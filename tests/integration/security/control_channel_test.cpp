// Security: control channel (see docs/security.md), tried from outside against the
// real binaries: malformed lines, silent and hoarded connections, and scale
// requests that would fork the machine to its knees.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;
using nlohmann::json;

namespace {

// A raw connection to the control socket, one line at a time.
class ControlLine {
 public:
  explicit ControlLine(const ManagerProcess& manager)
      : fd_(connect_to({Address::Kind::unix_socket, {}, 0, manager.control_socket()})) {
    REQUIRE(fd_ >= 0);
  }
  ~ControlLine() {
    if (fd_ >= 0) ::close(fd_);
  }
  ControlLine(const ControlLine&) = delete;
  ControlLine& operator=(const ControlLine&) = delete;

  void send(const std::string& bytes) {
    REQUIRE(::write(fd_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  }
  // The next line, or nullopt when the manager closed the connection or sent
  // nothing within `timeout`; `closed` tells which.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (const auto end = buffer_.find('\n'); end != std::string::npos) {
        std::string line = buffer_.substr(0, end);
        buffer_.erase(0, end + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd wait{fd_, POLLIN, 0};
      if (::poll(&wait, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t got = ::read(fd_, chunk, sizeof chunk);
      if (got <= 0) {
        closed = true;
        return std::nullopt;
      }
      buffer_.append(chunk, static_cast<std::size_t>(got));
    }
  }
  json ask(const std::string& line) {
    send(line);
    const auto reply = read_line();
    INFO(line);
    REQUIRE(reply);
    return json::parse(*reply);
  }

  bool closed = false;

 private:
  int fd_;
  std::string buffer_;
};

// How many workers of "app" the status shows with a process.
std::size_t workers_with_a_process(const json& status_reply) {
  std::size_t count = 0;
  for (const json& worker : status_reply["pools"][0]["workers"])
    if (worker["pid"].get<long>() > 0) ++count;
  return count;
}

}  // namespace

TEST_CASE("a number out of range gets an error reply and the connection goes on", "[security]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 1"}, 1);
  ControlLine control(manager);
  const json overflow = control.ask("{\"command\":\"status\",\"id\":1e400}\n");
  INFO(overflow.dump());
  CHECK(overflow["ok"] == false);
  CHECK_THAT(overflow["error"].get<std::string>(),
             Catch::Contains("number overflow parsing '1e400'"));
  // Each of these too gets its error, on the same connection.
  for (const std::string& line :
       {std::string("{\"command\":\"scale\",\"pool\":\"app\",\"workers\":-1e999}\n"),
        std::string("{\"command\":\"status\",\"pool\":\"\xff\xfe\"}\n"),
        std::string(60'000, '[') + "\n", std::string("{\"command\":[\"status\"]}\n")}) {
    const json reply = control.ask(line);
    CHECK(reply["ok"] == false);
  }
  const json next = control.ask("{\"command\":\"status\",\"id\":2}\n");
  CHECK(next["ok"] == true);
  CHECK(next["id"] == 2);
  CHECK(manager.process().running());
}

TEST_CASE("a silent control connection is closed after the idle timeout", "[security]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 1"}, 1);
  ControlLine silent(manager);
  ControlLine half(manager);
  half.send("{\"command\":\"sta");  // never finished
  for (ControlLine* connection : {&silent, &half}) {
    const auto farewell = connection->read_line(20s);
    REQUIRE(farewell);
    CHECK(json::parse(*farewell)["error"] ==
          "no complete request line within 10s; closing the connection");
    CHECK_FALSE(connection->read_line(5s));
    CHECK(connection->closed);
  }
  CHECK(manager.process().log().find("closed the idle connection") != std::string::npos);
  CHECK(scgictl(dir, manager, {"status"}).exit_code == 0);
}

TEST_CASE("a control_group member holding every connection it can does not lock root out",
          "[security]") {
  TempDir dir;
  // nobody reaches the socket through the folder, as a member of its group.
  std::filesystem::permissions(dir.path(), std::filesystem::perms::others_exec,
                               std::filesystem::perm_options::add);
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 1",
                          .manager_keys = "control_group = \"nogroup\""},
                         1);
  // As uid nobody (group nogroup): opens 300 connections, says nothing, keeps them.
  // /usr/bin/python3: the system one, which nobody may run (PATH may find a per-user install).
  const std::string hoard =
      "import socket, sys, time\n"
      "held = []\n"
      "for _ in range(300):\n"
      "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
      "    s.connect(sys.argv[1])\n"
      "    held.append(s)\n"
      "print('held', len(held), flush=True)\n"
      "time.sleep(60)\n";
  Process hoarder = Process::start({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                    "/usr/bin/python3", "-c", hoard, manager.control_socket()},
                                   dir.file("hoarder.log"));
  const bool held =
      eventually([&] { return hoarder.log().find("held 300") != std::string::npos; }, 20s);
  INFO(hoarder.log());
  INFO(manager.process().log());
  REQUIRE(held);

  // Root still gets in, at once, with every connection it needs.
  for (int i = 0; i < 5; ++i) {
    const CtlRun status = scgictl(dir, manager, {"status"});
    INFO(status.out << status.err);
    CHECK(status.exit_code == 0);
  }
  // And so does another member of the group, as another uid.
  const CtlRun other =
      scgictl(dir, manager, {"status"},
              {.prefix = {"setpriv", "--reuid=65533", "--regid=65534", "--clear-groups"}});
  INFO(other.out << other.err);
  CHECK(other.exit_code == 0);
  const std::string log = manager.process().log();
  CHECK(log.find("(uid 65534): too many control connections: uid 65534 has 8 open") !=
        std::string::npos);
  hoarder.stop();
}

TEST_CASE("scgictl scale 100000 is refused with the limit named and forks nothing", "[security]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 1"}, 1);
  const std::set<pid_t> before = manager.worker_pids();
  const CtlRun scale = scgictl(dir, manager, {"scale", "app", "100000"});
  INFO(scale.out << scale.err);
  CHECK(scale.exit_code == 1);
  CHECK_THAT(scale.err, Catch::Contains("100000 workers is more than [manager] "
                                        "max_workers_per_pool (1024): raise it in " +
                                        manager.config_path()));
  CHECK(manager.worker_pids() == before);
  ControlLine control(manager);
  const json status = control.ask("{\"command\":\"status\"}\n");
  CHECK(status["pools"][0]["target_workers"] == 1);
  CHECK(status["pools"][0]["workers"].size() == 1);
  CHECK(manager.process().running());
}

TEST_CASE("a large scale starts workers a few at a time while status answers", "[security]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 1"}, 1);
  constexpr std::size_t kTarget = 40;
  ControlLine control(manager);
  const json scaled = control.ask("{\"command\":\"scale\",\"pool\":\"app\",\"workers\":40}\n");
  INFO(scaled.dump());
  CHECK(scaled["ok"] == true);
  // The reply came before the workers: they are not forked in one burst.
  const json first = control.ask("{\"command\":\"status\"}\n");
  CHECK(workers_with_a_process(first) < kTarget);
  CHECK(first["pools"][0]["target_workers"] == kTarget);

  // The pool grows while status keeps answering, and gets there.
  std::size_t answered = 0;
  bool grown = eventually(
      [&] {
        const json status = control.ask("{\"command\":\"status\"}\n");
        ++answered;
        std::size_t ready = 0;
        for (const json& worker : status["pools"][0]["workers"])
          if (worker["state"] == "ready") ++ready;
        return ready == kTarget;
      },
      60s);
  INFO(manager.process().log());
  CHECK(grown);
  CHECK(answered > 1);
  CHECK(manager.worker_pids().size() == kTarget);
}
