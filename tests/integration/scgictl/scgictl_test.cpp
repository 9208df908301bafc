// The scgictl binary against a real scgi-manager running real sample
// workers: every command as a person reads it and as --json, restart's
// progress, `logs -f` following a request's line until Ctrl-C, `top` in a
// pseudo-terminal, and every error with its exit code and its advice.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "../support/harness.hpp"

extern char** environ;

using namespace scgi;
using namespace scgi::test;
using nlohmann::json;

namespace {

constexpr std::string_view kLeaveScreen = "\x1b[?25h\x1b[?1049l";

json parse_object(const CtlRun& run) {
  INFO("stdout: " << run.out << "\nstderr: " << run.err);
  REQUIRE(std::count(run.out.begin(), run.out.end(), '\n') == 1);  // exactly one object
  return json::parse(run.out);
}

// The status of pool "app" as --json reports it.
json app_status(const TempDir& dir, const ManagerProcess& manager) {
  const CtlRun run = scgictl(dir, manager, {"--json", "status", "app"});
  REQUIRE(run.exit_code == 0);
  return parse_object(run)["pools"][0];
}

std::optional<json> worker_of(const json& pool, int index) {
  for (const json& worker : pool["workers"])
    if (worker["index"] == index && worker["wanted"] == "up") return worker;
  return std::nullopt;
}

// A program on a pseudo-terminal of its own (its session's controlling
// terminal, 120x40), as a person runs it; what it writes is collected from
// the master side. Stopped by its PID, with SIGKILL, if still running at the end.
class PtyProcess {
 public:
  PtyProcess(std::vector<std::string> argv, const std::map<std::string, std::string>& env) {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    REQUIRE(master_ >= 0);
    REQUIRE(::grantpt(master_) == 0);
    REQUIRE(::unlockpt(master_) == 0);
    const std::string slave = ::ptsname(master_);
    winsize size{};
    size.ws_row = 40;
    size.ws_col = 120;
    ::ioctl(master_, TIOCSWINSZ, &size);
    ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);

    // Everything the child needs is made before fork: after it, only system calls.
    std::map<std::string, std::string> merged;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string text(*entry);
      const auto eq = text.find('=');
      if (eq != std::string::npos) merged[text.substr(0, eq)] = text.substr(eq + 1);
    }
    merged.erase("NO_COLOR");
    merged["TERM"] = "xterm";
    for (const auto& [key, value] : env)
      merged[key] = value;
    std::vector<std::string> env_strings;
    for (const auto& [key, value] : merged)
      env_strings.push_back(key + "=" + value);
    std::vector<char*> env_pointers;
    for (auto& text : env_strings)
      env_pointers.push_back(text.data());
    env_pointers.push_back(nullptr);
    std::vector<char*> arg_pointers;
    for (auto& text : argv)
      arg_pointers.push_back(text.data());
    arg_pointers.push_back(nullptr);

    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::setsid();
      const int terminal = ::open(slave.c_str(), O_RDWR);  // becomes the controlling terminal
      if (terminal < 0) ::_exit(126);
      ::ioctl(terminal, TIOCSCTTY, 0);
      ::dup2(terminal, STDIN_FILENO);
      ::dup2(terminal, STDOUT_FILENO);
      ::dup2(terminal, STDERR_FILENO);
      if (terminal > STDERR_FILENO) ::close(terminal);
      ::execve(arg_pointers[0], arg_pointers.data(), env_pointers.data());
      ::_exit(127);
    }
  }
  ~PtyProcess() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    ::close(master_);
  }
  PtyProcess(const PtyProcess&) = delete;
  PtyProcess& operator=(const PtyProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& output() const { return output_; }
  int master() const { return master_; }

  // Collects output until `text` has appeared (after `from`), or `timeout`.
  bool wait_for(std::string_view text, std::chrono::milliseconds timeout, std::size_t from = 0) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (output_.find(text, from) == std::string::npos) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      drain(20ms);
    }
    return true;
  }
  void type(std::string_view keys) {
    REQUIRE(::write(master_, keys.data(), keys.size()) == static_cast<ssize_t>(keys.size()));
  }
  // Waits for the exit, collecting output meanwhile; the wait status.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!status_ && std::chrono::steady_clock::now() < deadline) {
      drain(20ms);
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) status_ = status;
    }
    drain(0ms);  // what it wrote last
    return status_;
  }

 private:
  void drain(std::chrono::milliseconds wait) {
    pollfd readable{master_, POLLIN, 0};
    if (::poll(&readable, 1, static_cast<int>(wait.count())) <= 0) return;
    char buffer[4096];
    for (;;) {
      const ssize_t got = ::read(master_, buffer, sizeof buffer);
      if (got <= 0) return;  // EAGAIN, or EIO once the terminal's last user is gone
      output_.append(buffer, static_cast<std::size_t>(got));
    }
  }

  int master_ = -1;
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string output_;
};

PtyProcess start_top(const ManagerProcess& manager,
                     const std::map<std::string, std::string>& env = {}) {
  return PtyProcess(scgictl_command(manager, {"top"}), env);
}

}  // namespace

TEST_CASE("scgictl status shows the pool and its workers as a table and as JSON",
          "[manager][scgictl]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);
  REQUIRE(send_request(listen, get_request("/")).status() == 200);

  const CtlRun table = scgictl(dir, manager, {"status"});
  INFO(table.out << table.err);
  CHECK(table.exit_code == 0);
  CHECK(table.err.empty());
  CHECK_THAT(table.out,
             Catch::StartsWith("POOL  STATE    READY/TOTAL  INFLIGHT  QUEUE  REQ/S  LISTEN\n"
                               "app   running  2/2          0         0      ") &&
                 Catch::Contains(listen.to_string() + "\n\nWORKER  PID  ") &&
                 Catch::Contains("RSS") && Catch::Contains("LAST EXIT"));
  for (const pid_t pid : manager.worker_pids())
    CHECK_THAT(table.out, Catch::Contains(std::to_string(pid) + "  ready  "));
  CHECK(table.out.find('\x1b') == std::string::npos);  // not a terminal: no color
  CHECK(scgictl(dir, manager, {"status", "app"}).out == table.out);

  const json reply = parse_object(scgictl(dir, manager, {"--json", "status"}));
  CHECK(reply["ok"] == true);
  CHECK_FALSE(reply.contains("id"));
  REQUIRE(reply["pools"].size() == 1);
  const json& pool = reply["pools"][0];
  CHECK(pool["name"] == "app");
  CHECK(pool["state"] == "running");
  CHECK(pool["listen"] == listen.to_string());
  // Counted when the manager samples its pools (every second or so).
  CHECK(eventually([&] { return app_status(dir, manager)["requests"] == 1; }, 5s));
  for (const char* field : {"in_flight", "queue_length", "request_rate", "latency_p50_seconds",
                            "latency_p99_seconds", "target_workers", "restarts"})
    CHECK(pool.contains(field));
  REQUIRE(pool["workers"].size() == 2);
  for (const json& worker : pool["workers"]) {
    CHECK(worker["state"] == "ready");
    CHECK(manager.worker_pids().count(worker["pid"].get<pid_t>()) == 1);
  }
}

TEST_CASE("scgictl stop, start, scale, drain, undrain and reload change a real pool",
          "[manager][scgictl]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);

  const CtlRun stop = scgictl(dir, manager, {"stop", "app:1"});
  INFO(stop.out << stop.err);
  CHECK(stop.exit_code == 0);
  CHECK_FALSE(stop.out.empty());
  CHECK(manager.wait_workers("stopped", 1, 10s));
  CHECK_THAT(scgictl(dir, manager, {"status"}).out, Catch::Contains("  stopped  "));
  CHECK(worker_of(app_status(dir, manager), 1) == std::nullopt);  // wanted down

  const json start = parse_object(scgictl(dir, manager, {"--json", "start", "app:1"}));
  CHECK(start["ok"] == true);
  CHECK(start["message"].is_string());
  CHECK(manager.wait_workers("ready", 2, 10s));

  const CtlRun scale = scgictl(dir, manager, {"scale", "app", "3"});
  CHECK(scale.exit_code == 0);
  CHECK(manager.wait_workers("ready", 3, 10s));
  CHECK(app_status(dir, manager)["target_workers"] == 3);

  const CtlRun drain = scgictl(dir, manager, {"drain", "--wait", "app:0"});
  INFO(drain.out << drain.err);
  CHECK(drain.exit_code == 0);
  CHECK_THAT(scgictl(dir, manager, {"status"}).out, Catch::Contains("ready,drained"));
  CHECK(worker_of(app_status(dir, manager), 0).value()["drained"] == true);
  const json undrain = parse_object(scgictl(dir, manager, {"--json", "undrain", "app:0"}));
  CHECK(undrain["ok"] == true);
  CHECK(worker_of(app_status(dir, manager), 0).value()["drained"] == false);

  // reload re-reads the file: the size it gives (2) replaces the scaled one.
  const CtlRun reload = scgictl(dir, manager, {"reload"});
  INFO(reload.out << reload.err);
  CHECK(reload.exit_code == 0);
  CHECK(eventually([&] { return app_status(dir, manager)["target_workers"] == 2; }, 10s));
  const json again = parse_object(scgictl(dir, manager, {"--json", "reload"}));
  CHECK(again["ok"] == true);
  // A file with errors: the reload fails (1), says why, and the pool keeps running.
  dir.write("scgi.toml", "[[pool]]\nname = \"app\"\nbogus_key = 1\n");
  const CtlRun broken = scgictl(dir, manager, {"reload"});
  CHECK(broken.exit_code == 1);
  CHECK_THAT(broken.err, Catch::StartsWith("scgictl: ") && Catch::Contains("bogus_key"));
  CHECK(send_request(listen, get_request("/")).status() == 200);
}

TEST_CASE("scgictl restart waits for a rolling restart and prints each step",
          "[manager][scgictl]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);
  const auto before = manager.worker_pids();

  const CtlRun restart = scgictl(dir, manager, {"restart", "app"});
  INFO(restart.out << restart.err);
  CHECK(restart.exit_code == 0);
  // Every worker replaced by the time it returns; a line per step, then the outcome.
  const auto after = manager.worker_pids();
  CHECK(after.size() == 2);
  for (const pid_t pid : before)
    CHECK(after.count(pid) == 0);
  std::vector<std::string> lines;
  std::istringstream text(restart.out);
  for (std::string line; std::getline(text, line);)
    lines.push_back(line);
  REQUIRE(lines.size() >= 3);
  for (const pid_t pid : before)  // each old worker has its steps
    CHECK_THAT(restart.out, Catch::Contains(std::to_string(pid)));
  for (const pid_t pid : after)
    CHECK_THAT(restart.out, Catch::Contains(std::to_string(pid)));

  const json one = parse_object(scgictl(dir, manager, {"--json", "restart", "app:0"}));
  CHECK(one["ok"] == true);
  CHECK(one["message"].is_string());
  REQUIRE(one["progress"].is_array());
  CHECK(one["progress"].size() >= 2);
  CHECK(manager.wait_workers("ready", 2, 10s));
}

TEST_CASE("scgictl logs shows worker output and logs -f follows it until Ctrl-C",
          "[manager][scgictl]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command({"--verbose"}),
                          .pool_keys = "workers = 1"},
                         1);
  REQUIRE(send_request(listen, get_request("/seen-before")).status() == 200);
  REQUIRE(eventually([&] {
    return scgictl(dir, manager, {"logs", "app"}).out.find("/seen-before") != std::string::npos;
  }));
  const CtlRun recent = scgictl(dir, manager, {"logs", "app:0", "-n", "1"});
  CHECK(recent.exit_code == 0);
  CHECK(std::count(recent.out.begin(), recent.out.end(), '\n') == 1);
  CHECK_THAT(recent.out, Catch::Contains("app[0]"));
  const json lines = parse_object(scgictl(dir, manager, {"--json", "logs", "app", "-n", "50"}));
  CHECK(lines["ok"] == true);
  CHECK(lines["lines"].dump().find("/seen-before") != std::string::npos);

  // Text: the recent lines first (so it has subscribed), then the request made after.
  Process follower =
      Process::start(scgictl_command(manager, {"logs", "app", "-f"}), dir.file("follow.log"));
  REQUIRE(eventually([&] { return follower.log().find("/seen-before") != std::string::npos; }));
  REQUIRE(send_request(listen, get_request("/seen-while-following")).status() == 200);
  CHECK(eventually(
      [&] { return follower.log().find("/seen-while-following") != std::string::npos; }));
  CHECK(follower.running());
  follower.signal(SIGINT);
  const auto stopped = follower.wait(10s);
  REQUIRE(stopped);
  CHECK(exited_with(*stopped, 0));
  CHECK(follower.log().find("scgictl:") == std::string::npos);  // no complaint

  // JSON lines: the reply, then one {"log":...} per line; SIGTERM ends it as cleanly.
  Process json_follower =
      Process::start(scgictl_command(manager, {"--json", "logs", "app", "-f", "-n", "0"}),
                     dir.file("follow-json.log"));
  REQUIRE(eventually([&] { return json_follower.log() == "{\"lines\":[],\"ok\":true}\n"; }));
  REQUIRE(send_request(listen, get_request("/seen-as-json")).status() == 200);
  CHECK(eventually([&] { return json_follower.log().find("/seen-as-json") != std::string::npos; }));
  json_follower.signal(SIGTERM);
  const auto json_stopped = json_follower.wait(10s);
  REQUIRE(json_stopped);
  CHECK(exited_with(*json_stopped, 0));
  std::istringstream streamed(json_follower.log());
  std::string line;
  std::getline(streamed, line);
  while (std::getline(streamed, line)) {
    const json parsed = json::parse(line);
    CHECK(parsed.size() == 1);
    CHECK(parsed["log"].is_string());
  }
}

TEST_CASE("scgictl top draws the pools in a terminal and quits on q, restoring it",
          "[manager][scgictl][top]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);
  PtyProcess top = start_top(manager);
  // The first frame: on the alternate screen, in color, with the pool and its workers.
  REQUIRE(top.wait_for("app:1", 10s));
  CHECK_THAT(top.output(), Catch::StartsWith("\x1b[?1049h\x1b[?25l\x1b[H"));
  CHECK_THAT(top.output(), Catch::Contains("P50") && Catch::Contains("P99") &&
                               Catch::Contains("REQ/S") && Catch::Contains("QUEUE") &&
                               Catch::Contains("\x1b[32mrunning\x1b[0m") &&
                               Catch::Contains("\x1b[32mready\x1b[0m"));
  termios during{};
  REQUIRE(::tcgetattr(top.master(), &during) == 0);
  CHECK((during.c_lflag & (ICANON | ECHO)) == 0);  // keys one at a time, no echo
  // It redraws: a second frame comes a second later.
  const std::size_t first_frame = top.output().size();
  CHECK(top.wait_for("\x1b[H", 5s, first_frame));

  top.type("q");
  const auto status = top.wait_exit(10s);
  REQUIRE(status);
  INFO(top.output());
  CHECK(exited_with(*status, 0));
  CHECK_THAT(top.output(), Catch::EndsWith(std::string(kLeaveScreen)));
  termios after{};
  REQUIRE(::tcgetattr(top.master(), &after) == 0);
  CHECK((after.c_lflag & (ICANON | ECHO)) == (ICANON | ECHO));  // as it was
}

TEST_CASE("scgictl top restores the terminal and exits 0 on Ctrl-C and on SIGTERM",
          "[manager][scgictl][top]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 1"}, 1);
  {
    PtyProcess top = start_top(manager, {{"NO_COLOR", "1"}});
    REQUIRE(top.wait_for("app:0", 10s));
    CHECK(top.output().find("\x1b[32m") == std::string::npos);  // NO_COLOR: no color
    termios settings{};
    REQUIRE(::tcgetattr(top.master(), &settings) == 0);
    CHECK((settings.c_lflag & ICANON) == 0);
    top.type("\x03");  // Ctrl-C, through the terminal: SIGINT to its foreground
    const auto status = top.wait_exit(10s);
    REQUIRE(status);
    INFO(top.output());
    CHECK(exited_with(*status, 0));
    CHECK_THAT(top.output(), Catch::EndsWith(std::string(kLeaveScreen)));
    REQUIRE(::tcgetattr(top.master(), &settings) == 0);
    CHECK((settings.c_lflag & (ICANON | ECHO)) == (ICANON | ECHO));  // as it was
  }
  {
    PtyProcess top = start_top(manager);
    REQUIRE(top.wait_for("app:0", 10s));
    ::kill(top.pid(), SIGTERM);
    const auto status = top.wait_exit(10s);
    REQUIRE(status);
    INFO(top.output());
    CHECK(exited_with(*status, 0));
    CHECK_THAT(top.output(), Catch::EndsWith(std::string(kLeaveScreen)));
    termios settings{};
    REQUIRE(::tcgetattr(top.master(), &settings) == 0);
    CHECK((settings.c_lflag & (ICANON | ECHO)) == (ICANON | ECHO));
  }
}

TEST_CASE("scgictl status paints states in a terminal unless NO_COLOR is set",
          "[manager][scgictl]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 1"}, 1);
  const std::vector<std::string> status = scgictl_command(manager, {"status"});
  PtyProcess painted(status, {});
  REQUIRE(painted.wait_exit(10s));
  CHECK_THAT(painted.output(),
             Catch::Contains("\x1b[32mrunning\x1b[0m") && Catch::Contains("\x1b[32mready\x1b[0m"));
  PtyProcess plain(status, {{"NO_COLOR", "1"}});
  REQUIRE(plain.wait_exit(10s));
  CHECK_THAT(plain.output(), Catch::Contains("app   running"));
  CHECK(plain.output().find('\x1b') == std::string::npos);
}

TEST_CASE("scgictl errors give their exit code and say what to do next", "[manager][scgictl]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);

  SECTION("an unknown pool or worker: 1, the manager's reason") {
    for (const std::vector<std::string>& arguments :
         std::vector<std::vector<std::string>>{{"status", "nope"},
                                               {"restart", "nope"},
                                               {"stop", "nope:0"},
                                               {"logs", "nope"},
                                               {"scale", "nope", "3"}}) {
      const CtlRun run = scgictl(dir, manager, arguments);
      INFO(arguments[0] << ": " << run.out << run.err);
      CHECK(run.exit_code == 1);
      CHECK(run.out.empty());
      CHECK_THAT(run.err, Catch::StartsWith("scgictl: ") && Catch::Contains("nope") &&
                              Catch::Contains("app"));  // names the pools there are
    }
    for (const std::vector<std::string>& arguments : std::vector<std::vector<std::string>>{
             {"stop", "app:9"}, {"restart", "app:9"}, {"logs", "app:9"}, {"drain", "app:9"}}) {
      const CtlRun run = scgictl(dir, manager, arguments);
      INFO(arguments[0] << ": " << run.out << run.err);
      CHECK(run.exit_code == 1);
      CHECK_THAT(run.err, Catch::StartsWith("scgictl: ") && Catch::Contains("9"));
    }
    CHECK_THAT(scgictl(dir, manager, {"logs", "app:9"}).err,
               Catch::Contains("its workers are: 0, 1"));
    const json failed = parse_object(scgictl(dir, manager, {"--json", "status", "nope"}));
    CHECK(failed["ok"] == false);
    CHECK_THAT(failed["error"].get<std::string>(), Catch::Contains("nope"));
  }

  SECTION("bad usage: 2, what is wrong and the command's usage") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{}, "a command is needed"},
        {{"explode"}, "unknown command \"explode\"; the commands are status, start"},
        {{"help", "explode"}, "no command \"explode\""},
        {{"restart"}, "usage: scgictl restart POOL[:WORKER]"},
        {{"restart", "app:x"}, "must be a worker index"},
        {{"scale", "app"}, "usage: scgictl scale POOL N"},
        {{"scale", "app", "-1"}, "usage: scgictl scale POOL N"},
        {{"drain", "app"}, "drain needs POOL:WORKER, e.g. app:0"},
        {{"logs", "app", "-n", "100001"}, "usage: scgictl logs"},
        {{"status", "--timeout", "soon"}, "--timeout soon"},
        {{"status", "--bogus"}, "--bogus"},
    };
    for (const auto& [arguments, message] : cases) {
      const CtlRun run = scgictl(dir, manager, arguments);
      INFO(message << ": " << run.err);
      CHECK(run.exit_code == 2);
      CHECK(run.out.empty());
      CHECK_THAT(run.err, Catch::StartsWith("scgictl: ") && Catch::Contains(message) &&
                              Catch::Contains("scgictl help"));
    }
  }

  SECTION("no manager on the socket: 3, which socket and what to check") {
    const std::string gone = dir.file("gone.sock");
    // The socket from SCGI_SOCKET, as a person sets it once.
    const CtlRun missing = run_scgictl(dir, {"status"}, {.env = {{"SCGI_SOCKET", gone}}});
    CHECK(missing.exit_code == 3);
    CHECK(missing.err == "scgictl: cannot connect to " + gone +
                             ": No such file or directory: is scgi-manager running? Start it "
                             "with scgi-manager --config FILE, or point --socket (or "
                             "SCGI_SOCKET) at the control_socket of its configuration (default "
                             "/run/scgi/scgi.sock)\n");
    const json object =
        parse_object(run_scgictl(dir, {"--socket", gone, "--json", "restart", "app"}));
    CHECK(object["ok"] == false);
    CHECK_THAT(object["error"].get<std::string>(), Catch::StartsWith("cannot connect to " + gone));

    // A socket file nobody accepts on (a manager that died): refused, and said so.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, dir.file("stale.sock").c_str());
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    ::close(fd);
    const CtlRun stale = run_scgictl(dir, {"--socket", dir.file("stale.sock"), "status"});
    CHECK(stale.exit_code == 3);
    CHECK_THAT(stale.err, Catch::Contains("Connection refused: nothing accepts on it"));
  }

  SECTION("top without a terminal: 2, and what to use instead") {
    const CtlRun top = scgictl(dir, manager, {"top"});
    CHECK(top.exit_code == 2);
    CHECK_THAT(top.err, Catch::Contains("top is a live view for a terminal") &&
                            Catch::Contains("scgictl --json top"));
    // --json top needs none: a status object per second until stopped.
    Process json_top =
        Process::start(scgictl_command(manager, {"--json", "top"}), dir.file("json-top.log"));
    CHECK(eventually(
        [&] {
          const std::string log = json_top.log();
          return std::count(log.begin(), log.end(), '\n') >= 2;
        },
        10s));
    json_top.signal(SIGINT);
    const auto stopped = json_top.wait(10s);
    REQUIRE(stopped);
    CHECK(exited_with(*stopped, 0));
    std::istringstream objects(json_top.log());
    for (std::string line; std::getline(objects, line);)
      CHECK(json::parse(line)["pools"][0]["name"] == "app");
  }

  SECTION("version and help: 0") {
    const CtlRun version = scgictl(dir, manager, {"version"});
    CHECK(version.exit_code == 0);
    CHECK_THAT(version.out, Catch::StartsWith("scgictl 0."));
    const CtlRun help = scgictl(dir, manager, {"help"});
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, Catch::Contains("restart") && Catch::Contains("top"));
    const CtlRun one = scgictl(dir, manager, {"help", "drain"});
    CHECK(one.exit_code == 0);
    CHECK_THAT(one.out, Catch::Contains("--wait"));
  }
}
