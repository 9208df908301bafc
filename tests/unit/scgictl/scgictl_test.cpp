// scgictl's command line run in-process against a ControlServer with a
// scripted handler: what each command sends, what it prints (text and
// --json), its exit codes; the status table's and top's formatting; signals.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control_client.hpp"
#include "interrupt_signals.hpp"
#include "scgictl.hpp"
#include "scripted_control.hpp"
#include "status_table.hpp"
#include "top_view.hpp"

using namespace scgi;
using namespace scgi::test;
using namespace scgi::ctl;
using namespace std::chrono_literals;

namespace {

struct Run {
  int code = -1;
  std::string out;
  std::string err;
};

Run scgictl(std::vector<std::string> arguments, const Console& console = {}) {
  arguments.insert(arguments.begin(), "scgictl");
  std::vector<const char*> argv;
  for (const auto& argument : arguments)
    argv.push_back(argument.c_str());
  std::ostringstream out;
  std::ostringstream err;
  Run run;
  run.code = scgictl_main(static_cast<int>(argv.size()), argv.data(), out, err, console);
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

  CHECK(run.out.find('\x1b') == std::string::npos);  // no terminal: no color

  // Options after the command work too; the JSON is the reply, without scgictl's id.
  const Run json_run = scgictl({"status", "app", "--json", "--socket", server.path()});
  CHECK(json_run.code == 0);
  const auto reply = nlohmann::json::parse(json_run.out);
  CHECK(reply["ok"] == true);
  CHECK_FALSE(reply.contains("id"));
  CHECK(reply["pools"].get<std::vector<control::PoolStatus>>() == two_worker_pool());
}

TEST_CASE("scgictl status paints states only when the console allows color", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  const Run painted = scgictl({"--socket", server.path(), "status"}, Console{.color = true});
  CHECK(painted.code == 0);
  CHECK(painted.out == render_status(two_worker_pool(), {.color = true}));
  CHECK_THAT(painted.out, Catch::Contains("\x1b[32mready\x1b[0m") &&
                              Catch::Contains("\x1b[31mbackoff\x1b[0m") &&
                              Catch::Contains("\x1b[33mdegraded\x1b[0m"));
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
  // The steps it took before failing are still shown.
  CHECK(failed.out == "app:0 replacement ready\napp:0 old worker stopped\n");

  // With --json the failure is an object on stdout too.
  const Run json_unknown = scgictl({"--socket", server.path(), "--json", "status", "web"});
  CHECK(json_unknown.code == 1);
  CHECK(nlohmann::json::parse(json_unknown.out) ==
        nlohmann::json{{"ok", false}, {"error", "no pool named web"}});
  CHECK(json_unknown.err == "scgictl: no pool named web\n");
}

TEST_CASE("scgictl sends each command with its arguments and prints the reply",
          "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().message = "all good"; });
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"start", "app"}, "start app"},
      {{"stop", "app:1"}, "stop app:1"},
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

    // --json: the reply as one object, without scgictl's id.
    with_socket.insert(with_socket.begin(), "--json");
    const Run json_run = scgictl(with_socket);
    CHECK(json_run.code == 0);
    CHECK(nlohmann::json::parse(json_run.out) ==
          nlohmann::json{{"ok", true}, {"message", "all good"}});
    expected.push_back(call);
  }
  CHECK(server.on_loop([&] { return server.handler().calls; }) == expected);
}

TEST_CASE("scgictl restart prints each step as it comes, then the outcome", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().message = "restarted app:0"; });
  const Run run = scgictl({"--socket", server.path(), "restart", "app:0"});
  INFO(run.err);
  CHECK(run.code == 0);
  CHECK(run.out == "app:0 replacement ready\napp:0 old worker stopped\nrestarted app:0\n");

  // --json collects the steps into the one object.
  const Run json_run = scgictl({"--socket", server.path(), "--json", "restart", "app:0"});
  CHECK(json_run.code == 0);
  CHECK(nlohmann::json::parse(json_run.out) ==
        nlohmann::json{{"ok", true},
                       {"message", "restarted app:0"},
                       {"progress", {"app:0 replacement ready", "app:0 old worker stopped"}}});

  server.on_loop([&] {
    server.handler().fail_next = true;
    server.handler().restart_steps = {"app:0 replacement failed"};
  });
  const Run failed = scgictl({"--socket", server.path(), "--json", "restart", "app"});
  CHECK(failed.code == 1);
  CHECK(nlohmann::json::parse(failed.out) ==
        nlohmann::json{
            {"ok", false}, {"error", "it went wrong"}, {"progress", {"app:0 replacement failed"}}});
  CHECK(server.on_loop([&] { return server.handler().calls; }) ==
        std::vector<std::string>{"restart app:0", "restart app:0", "restart app"});
}

TEST_CASE("scgictl logs prints the recent lines", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().recent = {"a", "b", "c"}; });
  const Run run = scgictl({"--socket", server.path(), "logs", "app:1", "-n", "2"});
  CHECK(run.code == 0);
  CHECK(run.out == "b\nc\n");
  const Run json_run = scgictl({"--socket", server.path(), "logs", "app", "--json"});
  CHECK(json_run.code == 0);
  CHECK(nlohmann::json::parse(json_run.out) ==
        nlohmann::json{{"ok", true}, {"lines", {"a", "b", "c"}}});
  CHECK(server.on_loop([&] { return server.handler().calls; }) ==
        std::vector<std::string>{"logs app:1 2", "logs app 10"});
}

TEST_CASE("scgictl version and help", "[control][scgictl]") {
  const Run version = scgictl({"version"});
  CHECK(version.code == 0);
  CHECK_THAT(version.out, Catch::StartsWith("scgictl ") && Catch::EndsWith("\n"));
  CHECK(scgictl({"--version"}).out == version.out);
  const auto json_version = nlohmann::json::parse(scgictl({"--json", "version"}).out);
  CHECK(json_version["ok"] == true);
  CHECK("scgictl " + json_version["version"].get<std::string>() + "\n" == version.out);

  const Run all = scgictl({"help"});
  CHECK(all.code == 0);
  for (const char* command : {"status", "start", "stop", "restart", "scale", "reload", "drain",
                              "undrain", "logs", "top", "version", "help"})
    CHECK_THAT(all.out, Catch::Contains(std::string("  ") + command + " "));
  CHECK(scgictl({"--help"}).code == 0);

  const Run one = scgictl({"help", "logs"});
  CHECK(one.code == 0);
  CHECK_THAT(one.out, Catch::Contains("Usage: scgictl logs") && Catch::Contains("--follow") &&
                          Catch::Contains("--lines"));
  CHECK(scgictl({"logs", "--help"}).out == one.out);

  const auto json_help = nlohmann::json::parse(scgictl({"help", "--json"}).out);
  CHECK(json_help["ok"] == true);
  CHECK(json_help["commands"].size() == 14);
  CHECK(json_help["commands"][0] == nlohmann::json{{"name", "status"},
                                                   {"usage", "scgictl status [POOL]"},
                                                   {"summary", "Show pools and their workers"}});

  const Run unknown = scgictl({"help", "explode"});
  CHECK(unknown.code == 2);
  CHECK_THAT(unknown.err,
             Catch::StartsWith("scgictl: no command \"explode\"; the commands are status, start"));
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
  // What is wrong, the usage, and where to read more.
  CHECK(scgictl({"drain", "app"}).err ==
        "scgictl: drain needs POOL:WORKER, e.g. app:0\n"
        "usage: scgictl drain [--wait] POOL:WORKER (scgictl help drain tells more)\n");
  CHECK(scgictl({"scale", "app"}).err ==
        "scgictl: scale: N is required\n"
        "usage: scgictl scale POOL N (scgictl help scale tells more)\n");
  CHECK_THAT(
      scgictl({"explode"}).err,
      Catch::StartsWith(
          "scgictl: unknown command \"explode\"; the commands are status, "
          "start, stop, restart, scale, reload, upgrade, drain, undrain, logs, slowlog, top, "
          "version, help\n"));
  CHECK_THAT(scgictl({}).err, Catch::StartsWith("scgictl: a command is needed: one of status"));
  // Usage errors print nothing on stdout, even with --json.
  CHECK(scgictl({"--json", "scale", "app"}).out.empty());

  const Run top = scgictl({"top"});
  CHECK(top.code == 2);
  CHECK_THAT(top.err, Catch::Contains("top is a live view for a terminal") &&
                          Catch::Contains("scgictl --json top"));
}

TEST_CASE("scgictl exits 3 with what to do when the manager cannot be reached",
          "[control][scgictl]") {
  ScratchFolder folder;
  const Run missing = scgictl({"--socket", folder.file("none.sock"), "status"});
  CHECK(missing.code == 3);
  CHECK(missing.err == "scgictl: cannot connect to " + folder.file("none.sock") +
                           ": No such file or directory: is scgi-manager running? Start it "
                           "with scgi-manager --config FILE, or point --socket (or "
                           "SCGI_SOCKET) at the control_socket of its configuration (default "
                           "/run/scgi/scgi.sock)\n");
  CHECK(missing.out.empty());
  const Run json_missing = scgictl({"--json", "--socket", folder.file("none.sock"), "reload"});
  CHECK(json_missing.code == 3);
  const auto object = nlohmann::json::parse(json_missing.out);
  CHECK(object["ok"] == false);
  CHECK_THAT(object["error"].get<std::string>(), Catch::StartsWith("cannot connect to "));

  CHECK_THAT(connect_failure_message("/run/scgi/scgi.sock", EACCES),
             Catch::Contains("Permission denied") &&
                 Catch::Contains("run scgictl as root, as the manager's user, or as a "
                                 "member of its [manager] control_group"));
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

  // scgictl prints the manager's reason, whichever way the race goes; a
  // refused connection is a manager out of reach (3), not a failed command.
  std::thread refuse([&] { listener.refuse_one(); });
  const Run run = scgictl({"--socket", path, "status"});
  refuse.join();
  CHECK(run.code == 3);
  CHECK(run.err == "scgictl: permission denied: uid 65534 is not root\n");
}

TEST_CASE("scgictl finds the socket in $SCGI_SOCKET", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  ::setenv("SCGI_SOCKET", server.path().c_str(), 1);
  const Run run = scgictl({"status"});
  const Run overridden = scgictl({"--socket", folder.file("other.sock"), "status"});
  ::unsetenv("SCGI_SOCKET");
  CHECK(run.code == 0);
  CHECK(overridden.code == 3);
  CHECK(default_control_socket() == "/run/scgi/scgi.sock");
}

TEST_CASE("scgictl --config finds the socket in the manager's configuration file",
          "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("ctl.sock"));
  server.on_loop([&] { server.handler().message = "applied"; });
  const std::string config = folder.file("scgi.toml");
  std::ofstream(config) << "[manager]\ncontrol_socket = \"" << server.path()
                        << "\"\n[[pool]]\nname = \"app\"\n";
  // The rest of the file is the manager's to judge: a pool without a command
  // does not keep scgictl from reaching it. $SCGI_SOCKET does not count.
  ::setenv("SCGI_SOCKET", folder.file("other.sock").c_str(), 1);
  const Run reload = scgictl({"--config", config, "reload"});
  ::unsetenv("SCGI_SOCKET");
  INFO(reload.err);
  CHECK(reload.code == 0);
  CHECK(reload.out == "applied\n");
  CHECK(scgictl({"reload", "--config", config}).code == 0);  // after the command too

  // A file that cannot say where: nothing is sent, the reason and its position.
  std::ofstream(config) << "[manager]\ncontrol_socket = /run/x.sock\n";
  const Run broken = scgictl({"--config", config, "reload"});
  CHECK(broken.code == 3);
  CHECK_THAT(broken.err, Catch::StartsWith("scgictl: " + config + ":2:") &&
                             Catch::Contains("invalid TOML") && Catch::Contains("--socket PATH"));
  CHECK(server.on_loop([&] { return server.handler().calls; }) ==
        std::vector<std::string>{"reload", "reload"});

  // A socket changed since the manager started: the way out is a restart.
  std::ofstream(config) << "[manager]\ncontrol_socket = \"" << folder.file("new.sock") << "\"\n";
  const Run moved = scgictl({"--config", config, "status"});
  CHECK(moved.code == 3);
  CHECK_THAT(moved.err, Catch::Contains("cannot connect to " + folder.file("new.sock")) &&
                            Catch::Contains("restart the manager"));

  const Run both = scgictl({"--config", config, "--socket", server.path(), "status"});
  CHECK(both.code == 2);
  CHECK_THAT(both.err, Catch::Contains("excludes"));
}

TEST_CASE("a read waiting for the manager ends when a signal arrives", "[control][scgictl]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  auto connected = ControlClient::connect(server.path(), 5s);
  REQUIRE(connected);
  ControlClient client = std::move(connected).value();
  InterruptSignals signals;
  std::thread interrupt([] {
    std::this_thread::sleep_for(100ms);
    ::kill(::getpid(), SIGINT);  // caught: written to the pipe, not fatal
  });
  const auto started = std::chrono::steady_clock::now();
  const auto read = client.read_line(std::nullopt, signals.fd());
  interrupt.join();
  CHECK(read.status == ControlClient::ReadStatus::interrupted);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  CHECK(signals.take() == std::vector<int>{SIGINT});
  CHECK(signals.take().empty());
}

TEST_CASE("InterruptSignals puts the previous handlers back", "[control][scgictl]") {
  struct sigaction before {};
  ::sigaction(SIGTERM, nullptr, &before);
  {
    InterruptSignals signals({SIGTERM});
    struct sigaction during {};
    ::sigaction(SIGTERM, nullptr, &during);
    CHECK(during.sa_handler != before.sa_handler);
    ::raise(SIGTERM);
    CHECK(signals.take() == std::vector<int>{SIGTERM});
    CHECK_THROWS(InterruptSignals({SIGINT}));  // one at a time
  }
  struct sigaction after {};
  ::sigaction(SIGTERM, nullptr, &after);
  CHECK(after.sa_handler == before.sa_handler);
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
  CHECK(format_rate(0) == "0");
  CHECK(format_rate(0.4) == "0.4");
  CHECK(format_rate(12.34) == "12.3");
  CHECK(format_rate(1234.4) == "1234");
  CHECK(format_latency(0) == "-");
  CHECK(format_latency(0.00035) == "0.35ms");
  CHECK(format_latency(0.0123) == "12.3ms");
  CHECK(format_latency(0.25) == "250ms");
  CHECK(format_latency(1.2) == "1.20s");
}

TEST_CASE("states have colors, and lines are clipped by what shows", "[control][status]") {
  CHECK(state_color("ready") == "32");
  CHECK(state_color("running") == "32");
  for (const char* busy : {"starting", "draining", "stopping", "degraded"})
    CHECK(state_color(busy) == "33");
  CHECK(state_color("backoff") == "31");
  CHECK(state_color("failing") == "31");
  CHECK(state_color("stopped") == "2");
  CHECK(state_color("who knows") == "");
  CHECK(paint("ready", "32") == "\x1b[32mready\x1b[0m");
  CHECK(paint("plain", "") == "plain");

  CHECK(clip_line("abcdef", 4) == "abcd");
  CHECK(clip_line("abc", 10) == "abc");
  // Escapes take no column; a cut inside a color still resets it.
  CHECK(clip_line("ab\x1b[32mcdef\x1b[0mgh", 4) == "ab\x1b[32mcd\x1b[0m");
  CHECK(clip_line("ab\x1b[32mcd\x1b[0mgh", 5) == "ab\x1b[32mcd\x1b[0mg");
  CHECK(clip_line("\xc2\xb5s!", 2) == "\xc2\xb5s");  // a UTF-8 character is one column
}

TEST_CASE("a pool's state is worked out when an older manager sends none", "[control][status]") {
  auto pool = two_worker_pool()[0];
  CHECK(pool_state(pool) == "degraded");  // 1 of 2 ready
  pool.workers[1].state = "ready";
  CHECK(pool_state(pool) == "running");
  pool.failing = true;
  CHECK(pool_state(pool) == "failing");
  pool.target_workers = 0;
  pool.failing = false;
  CHECK(pool_state(pool) == "stopped");
  pool.state = "degraded";  // the manager's word wins
  CHECK(pool_state(pool) == "degraded");
}

TEST_CASE("a top frame redraws in place and fits the terminal", "[control][top]") {
  auto pools = two_worker_pool();
  pools[0].request_rate = 12.5;
  pools[0].latency_p50_seconds = 0.002;
  pools[0].latency_p99_seconds = 0.150;
  const std::string frame = render_top_frame(pools, "scgictl top", "", 200, 50, false);
  CHECK_THAT(frame, Catch::StartsWith("\x1b[Hscgictl top\x1b[K\r\n\x1b[K\r\nPOOL  STATE"));
  CHECK_THAT(frame, Catch::EndsWith("\x1b[K\x1b[J"));
  CHECK_THAT(frame, Catch::Contains("P50     P99    REQUESTS") &&
                        Catch::Contains("12.5   2.00ms  150ms  0") &&
                        Catch::Contains("app:0   4242"));
  CHECK(frame.find("LISTEN") == std::string::npos);

  // 3 rows: the title, the problem, a blank; 20 columns each.
  const std::string small = render_top_frame(pools, "scgictl top  /run/scgi/scgi.sock",
                                             "lost the connection", 20, 3, false);
  CHECK(small == "\x1b[Hscgictl top  /run/sc\x1b[K\r\nlost the connection\x1b[K\r\n\x1b[K\x1b[J");
  const std::string painted = render_top_frame(pools, "t", "oops", 200, 50, true);
  CHECK_THAT(painted,
             Catch::Contains("\x1b[31moops\x1b[0m") && Catch::Contains("\x1b[33mdegraded\x1b[0m"));
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
  pools[0].in_flight = 1;
  pools[0].request_rate = 12.34;
  CHECK(render_status(pools) ==
        "POOL  STATE     READY/TOTAL  INFLIGHT  QUEUE  REQ/S  LISTEN\n"
        "app   degraded  1/2          1         3      12.3   127.0.0.1:4000\n"
        "web   failing   0/1 (1-8)    0         0      0      -\n"
        "\n"
        "WORKER  PID   STATE            UPTIME  REQUESTS  INFLIGHT  RSS      CPU    RESTARTS  "
        "LAST EXIT\n"
        "app:0   4242  ready            2h03m   1234      1         45.2MiB  12.50  0         -\n"
        "app:1   -     backoff,drained  -       0         0         -        0.00   3         "
        "exit status 1\n");
  CHECK(render_status({}) == "no pools\n");
}
