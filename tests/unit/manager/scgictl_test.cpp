// scgictl's command line run in-process against a ControlServer with a
// scripted handler: what each command sends, what it prints, its exit codes;
// and the status table's formatting.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "scgi/manager/control_client.hpp"
#include "scgi/manager/scgictl.hpp"
#include "scgi/manager/status_table.hpp"
#include "scripted_control.hpp"

using namespace scgi;
using namespace scgi::test;
using namespace scgi::manager;
using namespace std::chrono_literals;

namespace {

struct Run {
  int code = -1;
  std::string out;
  std::string err;
};

Run scgictl(std::vector<std::string> arguments) {
  arguments.insert(arguments.begin(), "scgictl");
  std::vector<const char*> argv;
  for (const auto& argument : arguments)
    argv.push_back(argument.c_str());
  std::ostringstream out;
  std::ostringstream err;
  Run run;
  run.code = scgictl_main(static_cast<int>(argv.size()), argv.data(), out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

}  // namespace

TEST_CASE("scgictl status prints a table of pools and workers", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  const Run run = scgictl({"--socket", server.path(), "status"});
  INFO(run.err);
  CHECK(run.code == 0);
  CHECK(run.out == render_status(two_worker_pool()));
  CHECK_THAT(run.out, Catch::Contains("app:0   4242  ready"));

  // Options after the command work too; the JSON is the reply as sent.
  const Run json_run = scgictl({"status", "app", "--json", "--socket", server.path()});
  CHECK(json_run.code == 0);
  const auto reply = nlohmann::json::parse(json_run.out);
  CHECK(reply["ok"] == true);
  CHECK(reply["pools"].get<std::vector<control::PoolStatus>>() == two_worker_pool());
}

TEST_CASE("scgictl: a failed command exits 1 with the manager's message", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  const Run unknown = scgictl({"--socket", server.path(), "status", "web"});
  CHECK(unknown.code == 1);
  CHECK(unknown.err == "scgictl: no pool named web\n");
  CHECK(unknown.out.empty());

  server.on_loop([&] { server.handler().fail_next = true; });
  const Run failed = scgictl({"--socket", server.path(), "restart", "app"});
  CHECK(failed.code == 1);
  CHECK(failed.err == "scgictl: it went wrong\n");
}

TEST_CASE("scgictl sends each command with its arguments and prints the reply",
          "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().message = "all good"; });
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"start", "app"}, "start app"},
      {{"stop", "app:1"}, "stop app:1"},
      {{"restart", "app:0"}, "restart app:0"},
      {{"scale", "app", "5"}, "scale app 5"},
      {{"reload"}, "reload"},
      {{"drain", "--wait", "app:1"}, "drain app:1 wait"},
      {{"drain", "app:1"}, "drain app:1"},
      {{"undrain", "app:1"}, "undrain app:1"},
  };
  std::vector<std::string> expected;
  for (const auto& [arguments, call] : cases) {
    auto with_socket = arguments;
    with_socket.insert(with_socket.begin(), {"--socket", server.path()});
    const Run run = scgictl(with_socket);
    INFO(call << ": " << run.err);
    CHECK(run.code == 0);
    CHECK(run.out == "all good\n");
    expected.push_back(call);
  }
  CHECK(server.on_loop([&] { return server.handler().calls; }) == expected);
}

TEST_CASE("scgictl logs prints the recent lines", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().recent = {"a", "b", "c"}; });
  const Run run = scgictl({"--socket", server.path(), "logs", "app:1", "-n", "2"});
  CHECK(run.code == 0);
  CHECK(run.out == "b\nc\n");
  CHECK(server.on_loop([&] { return server.handler().calls; }) ==
        std::vector<std::string>{"logs app:1 2"});
}

TEST_CASE("scgictl usage errors exit 2 and say what is wrong", "[control][scgictl]") {
  const std::vector<std::vector<std::string>> wrong{
      {},
      {"explode"},
      {"restart"},
      {"restart", "app:x"},
      {"scale", "app"},
      {"scale", "app", "-1"},
      {"scale", "app:1", "3"},
      {"drain", "app"},
      {"undrain", "app"},
      {"logs", "app", "-n", "100001"},
      {"status", "--timeout", "soon"},
      {"--bogus", "status"},
  };
  for (const auto& arguments : wrong) {
    const Run run = scgictl(arguments);
    INFO(Catch::StringMaker<std::vector<std::string>>::convert(arguments) << ": " << run.err);
    CHECK(run.code == 2);
    CHECK_FALSE(run.err.empty());
  }
  CHECK(scgictl({"drain", "app"}).err == "scgictl: drain needs POOL:WORKER, e.g. app:0\n");
  CHECK(scgictl({"--help"}).code == 0);
  const Run top = scgictl({"top"});
  CHECK(top.code == 1);
  CHECK_THAT(top.err, Catch::Contains("not implemented yet"));
}

TEST_CASE("scgictl exits 3 with what to do when the manager cannot be reached",
          "[control][scgictl]") {
  ScratchFolder folder;
  const Run missing = scgictl({"--socket", folder.file("none.sock"), "status"});
  CHECK(missing.code == 3);
  CHECK_THAT(missing.err,
             Catch::StartsWith("scgictl: cannot connect to " + folder.file("none.sock") +
                               ": No such file or directory\n"));
  CHECK_THAT(missing.err, Catch::Contains("is scgi-manager running? is --socket right?"));

  CHECK_THAT(connect_failure_message("/run/scgi/scgi.sock", EACCES),
             Catch::Contains("Permission denied") &&
                 Catch::Contains("run as root, the manager's user, or a member of its "
                                 "control_group"));
  CHECK_THAT(connect_failure_message("/x.sock", ECONNREFUSED),
             Catch::Contains("scgi-manager is not running"));
}

namespace {

// A "manager" that refuses every connection the way the control server does:
// one error line at once, then close, without reading the request.
class RefusingListener {
 public:
  explicit RefusingListener(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
  }
  ~RefusingListener() { ::close(fd_); }
  // Accepts one connection, refuses it and returns once it is closed.
  void refuse_one() {
    const int client = ::accept(fd_, nullptr, nullptr);
    REQUIRE(client >= 0);
    const std::string line =
        "{\"ok\":false,\"error\":\"permission denied: uid 65534 is not root\"}\n";
    REQUIRE(::write(client, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    ::close(client);
  }

 private:
  int fd_ = -1;
};

}  // namespace

TEST_CASE("a refusal sent before the request went out still reaches the user",
          "[control][scgictl]") {
  ScratchFolder folder;
  const std::string path = folder.file("refusing.sock");
  RefusingListener listener(path);

  // The client library: the send fails (the peer is gone), the line is still there.
  auto connected = ControlClient::connect(path, 5s);
  REQUIRE(connected);
  ControlClient client = std::move(connected).value();
  listener.refuse_one();
  CHECK_FALSE(client.send(std::string(256 * 1024, 'x') + "\n", 5s));
  auto read = client.read_line(5s);
  REQUIRE(read.status == ControlClient::ReadStatus::line);
  CHECK_THAT(read.line, Catch::Contains("permission denied"));

  // scgictl prints the manager's reason, whichever way the race goes.
  std::thread refuse([&] { listener.refuse_one(); });
  const Run run = scgictl({"--socket", path, "status"});
  refuse.join();
  CHECK(run.code == 1);
  CHECK(run.err == "scgictl: permission denied: uid 65534 is not root\n");
}

TEST_CASE("scgictl finds the socket in $SCGI_CONTROL_SOCKET", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  ::setenv("SCGI_CONTROL_SOCKET", server.path().c_str(), 1);
  const Run run = scgictl({"status"});
  ::unsetenv("SCGI_CONTROL_SOCKET");
  CHECK(run.code == 0);
  CHECK(default_control_socket() == "/run/scgi/scgi.sock");
}

TEST_CASE("uptimes and sizes are written for people", "[control][status]") {
  CHECK(format_uptime(0) == "0s");
  CHECK(format_uptime(59.9) == "59s");
  CHECK(format_uptime(61) == "1m01s");
  CHECK(format_uptime(7'384) == "2h03m");
  CHECK(format_uptime(3 * 86'400 + 5 * 3'600) == "3d05h");
  CHECK(format_uptime(-1) == "-");
  CHECK(format_bytes(0) == "0B");
  CHECK(format_bytes(1023) == "1023B");
  CHECK(format_bytes(1024) == "1.00KiB");
  CHECK(format_bytes(47'396'044) == "45.2MiB");
  CHECK(format_bytes(200ull * 1024 * 1024) == "200MiB");
  CHECK(format_bytes(3ull * 1024 * 1024 * 1024 / 2) == "1.50GiB");
}

TEST_CASE("the status table has an aligned line per pool and per worker", "[control][status]") {
  auto pools = two_worker_pool();
  pools[0].workers[1].drained = true;
  control::PoolStatus dynamic;
  dynamic.name = "web";
  dynamic.min_workers = 1;
  dynamic.max_workers = 8;
  dynamic.target_workers = 1;
  dynamic.failing = true;
  pools.push_back(dynamic);
  CHECK(render_status(pools) ==
        "POOL  LISTEN          READY/TARGET  QUEUE  FAILING\n"
        "app   127.0.0.1:4000  1/2           3      no\n"
        "web   -               0/1 (1-8)     0      yes\n"
        "\n"
        "WORKER  PID   STATE            UPTIME  REQUESTS  INFLIGHT  RSS      CPU    RESTARTS  "
        "LAST EXIT\n"
        "app:0   4242  ready            2h03m   1234      1         45.2MiB  12.50  0         -\n"
        "app:1   -     backoff,drained  -       0         0         -        0.00   3         "
        "exit status 1\n");
  CHECK(render_status({}) == "no pools\n");
}
