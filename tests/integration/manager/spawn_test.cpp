// Starting workers for real: each socket hand-over mode with the sample
// worker, the exact environment, clear errors for what cannot start, and the
// kernel's guarantees (own session, killed with the manager).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

#include "../support/harness.hpp"
#include "scgi/request_writer.hpp"
#include "worker_spawn.hpp"

using namespace scgi;
using namespace scgi::manager;
using namespace scgi::test;

namespace {

PoolConfig pool_with(std::vector<std::string> command, SocketMode mode) {
  PoolConfig pool;
  pool.name = "app";
  pool.command = std::move(command);
  pool.socket = mode;
  return pool;
}

// Stops a spawned worker's whole process group and reaps it.
void stop_worker(pid_t pid) {
  ::kill(-pid, SIGTERM);
  int status = 0;
  for (int i = 0; i < 500 && ::waitpid(pid, &status, WNOHANG) == 0; ++i)
    ::usleep(10'000);
  if (::waitpid(pid, &status, WNOHANG) == 0) {
    ::kill(-pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
}

// A field of /proc/PID/stat (1-based, as in proc(5)); "" when the process is gone.
std::string stat_field(pid_t pid, int field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  if (stat.empty()) return {};
  // Fields after the command name, which is in parentheses and may hold spaces.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string value;
  for (int i = 3; i <= field; ++i)
    rest >> value;
  return value;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

TEST_CASE("each socket mode hands the worker its socket, and the balancer's address works",
          "[manager][spawn]") {
  TempDir dir;
  const std::string worker = built_binary("scgi-sample-worker");
  struct Mode {
    const char* name;
    SocketMode mode;
    std::vector<std::string> command;
  };
  const std::vector<Mode> modes = {
      {"inherit (fd 3, LISTEN_FDS, LISTEN_PID)", SocketMode::inherit, {worker}},
      {"port ({port})", SocketMode::port, {worker, "--port", "{port}"}},
      {"unix ({socket})", SocketMode::unix_socket, {worker, "--unix", "{socket}"}},
  };
  for (const Mode& m : modes) {
    CAPTURE(m.name);
    const PoolConfig pool = pool_with(m.command, m.mode);
    auto socket = WorkerSocket::prepare(pool, 0, dir.path().string());
    REQUIRE(socket);
    auto pid = spawn_worker(pool, 0, socket.value());
    REQUIRE(pid);
    CHECK(wait_until_accepting(socket.value().address()));
    const Response response = send_request(socket.value().address(), get_request("/hello"));
    CHECK(response.status() == 200);
    CHECK(response.header("X-Worker-Pid") == std::to_string(pid.value()));
    stop_worker(pid.value());
  }
}

TEST_CASE("the worker gets exactly the pool's environment and the SCGI_/LISTEN_ variables",
          "[manager][spawn]") {
  TempDir dir;
  PoolConfig pool = pool_with({"/usr/bin/env"}, SocketMode::inherit);
  pool.env = {{"APP_ENV", "production"}, {"EMPTY", ""}};
  auto socket = WorkerSocket::prepare(pool, 3, dir.path().string());
  REQUIRE(socket);
  const int out = ::open(dir.file("env.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  auto pid = spawn_worker(pool, 3, socket.value(), {.stdout_fd = out, .stderr_fd = -1});
  ::close(out);
  REQUIRE(pid);
  int status = 0;
  ::waitpid(pid.value(), &status, 0);
  std::set<std::string> lines;
  std::istringstream in(read_file(dir.file("env.txt")));
  for (std::string line; std::getline(in, line);)
    lines.insert(line);
  const std::set<std::string> expected{
      "APP_ENV=production", "EMPTY=",       "SCGI_POOL=app",
      "SCGI_WORKER=3",      "LISTEN_FDS=1", "LISTEN_PID=" + std::to_string(pid.value())};
  CHECK(lines == expected);
}

TEST_CASE("{port} is replaced in command and env alike", "[manager][spawn]") {
  TempDir dir;
  PoolConfig pool = pool_with({"/bin/sh", "-c", "echo arg={port} env=$APP_PORT"}, SocketMode::port);
  pool.env = {{"APP_PORT", "{port}"}};
  auto socket = WorkerSocket::prepare(pool, 0, dir.path().string());
  REQUIRE(socket);
  const int out = ::open(dir.file("out.txt").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  auto pid = spawn_worker(pool, 0, socket.value(), {.stdout_fd = out, .stderr_fd = -1});
  ::close(out);
  REQUIRE(pid);
  int status = 0;
  ::waitpid(pid.value(), &status, 0);
  const std::string port = std::to_string(socket.value().address().port);
  CHECK(read_file(dir.file("out.txt")) == "arg=" + port + " env=" + port + "\n");
}

TEST_CASE("what cannot start is an error that says which step failed, and leaves no process",
          "[manager][spawn]") {
  TempDir dir;
  struct Case {
    const char* what;
    PoolConfig pool;
    const char* message;
  };
  PoolConfig missing = pool_with({"/nonexistent/app"}, SocketMode::inherit);
  PoolConfig not_in_path = pool_with({"no-such-program-here"}, SocketMode::inherit);
  dir.write("not-executable.sh", "#!/bin/sh\necho never\n");
  ::chmod(dir.file("not-executable.sh").c_str(), 0644);
  PoolConfig not_executable = pool_with({dir.file("not-executable.sh")}, SocketMode::inherit);
  PoolConfig bad_cwd = pool_with({"/bin/true"}, SocketMode::inherit);
  bad_cwd.cwd = "/nonexistent-dir";
  const std::vector<Case> cases = {
      {"no such file", missing, "exec: No such file or directory"},
      {"not in PATH", not_in_path, "is not in PATH"},
      {"not executable", not_executable, "exec: Permission denied"},
      {"bad cwd", bad_cwd, "changing to cwd: No such file or directory"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    auto socket = WorkerSocket::prepare(c.pool, 0, dir.path().string());
    REQUIRE(socket);
    auto pid = spawn_worker(c.pool, 0, socket.value());
    REQUIRE_FALSE(pid);
    CHECK_THAT(pid.error(), Catch::Matchers::Contains(c.message));
  }
  int status = 0;
  CHECK(::waitpid(-1, &status, WNOHANG) <= 0);  // nothing left to reap
}

TEST_CASE("a worker runs in its own session with default signal dispositions", "[manager][spawn]") {
  TempDir dir;
  ::signal(SIGPIPE, SIG_IGN);  // as the manager does: the worker must not inherit it
  const PoolConfig pool = pool_with({"/bin/sleep", "30"}, SocketMode::port);
  auto socket = WorkerSocket::prepare(pool, 0, dir.path().string());
  REQUIRE(socket);
  auto pid = spawn_worker(pool, 0, socket.value());
  REQUIRE(pid);
  CHECK(stat_field(pid.value(), 6) == std::to_string(pid.value()));  // session id
  CHECK(stat_field(pid.value(), 5) == std::to_string(pid.value()));  // process group
  const std::string status = read_file("/proc/" + std::to_string(pid.value()) + "/status");
  CHECK(status.find("SigIgn:\t0000000000000000") != std::string::npos);
  stop_worker(pid.value());
  ::signal(SIGPIPE, SIG_DFL);
}

TEST_CASE("a worker dies with a manager killed by SIGKILL", "[manager][spawn]") {
  TempDir dir;
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  // A stand-in manager: spawns a worker, reports its pid, waits to be killed.
  const pid_t manager = ::fork();
  REQUIRE(manager >= 0);
  if (manager == 0) {
    const PoolConfig pool = pool_with({"/bin/sleep", "60"}, SocketMode::port);
    auto socket = WorkerSocket::prepare(pool, 0, dir.path().string());
    pid_t worker = -1;
    if (socket) {
      auto pid = spawn_worker(pool, 0, socket.value());
      if (pid) worker = pid.value();
    }
    (void)!::write(pipe_fds[1], &worker, sizeof worker);
    ::pause();
    ::_exit(0);
  }
  pid_t worker = -1;
  REQUIRE(::read(pipe_fds[0], &worker, sizeof worker) == sizeof worker);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
  REQUIRE(worker > 0);
  ::kill(manager, SIGKILL);
  int status = 0;
  ::waitpid(manager, &status, 0);
  // Gone, or a zombie waiting for init to reap it: either way not running.
  CHECK(eventually(
      [&] {
        const std::string state = stat_field(worker, 3);
        return state.empty() || state == "Z";
      },
      5s));
}

TEST_CASE("the sample Python worker serves in every socket mode", "[manager][spawn]") {
  TempDir dir;
  const std::string script = std::string(SCGI_SOURCE_DIR) + "/deploy/examples/workers/hello.py";
  struct Mode {
    const char* name;
    SocketMode mode;
    std::vector<std::string> command;
  };
  const std::vector<Mode> modes = {
      {"inherit", SocketMode::inherit, {"python3", script}},
      {"port", SocketMode::port, {"python3", script, "--port", "{port}"}},
      {"unix", SocketMode::unix_socket, {"python3", script, "--unix", "{socket}"}},
  };
  for (const Mode& m : modes) {
    CAPTURE(m.name);
    PoolConfig pool = pool_with(m.command, m.mode);
    auto socket = WorkerSocket::prepare(pool, 1, dir.path().string());
    REQUIRE(socket);
    auto pid = spawn_worker(pool, 1, socket.value());
    REQUIRE(pid);
    CHECK(wait_until_accepting(socket.value().address()));
    const Response response =
        send_request(socket.value().address(),
                     make_request({{"REQUEST_METHOD", "POST"}, {"REQUEST_URI", "/py"}}, "four"));
    CHECK(response.status() == 200);
    CHECK(response.body() ==
          "hello from app[1] pid " + std::to_string(pid.value()) + ": POST /py, 4 body bytes\n");
    stop_worker(pid.value());
  }
}
