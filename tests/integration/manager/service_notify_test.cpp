// scgi-manager under systemd's Type=notify: READY=1 once it serves,
// RELOADING=1 and READY=1 around every reload (SIGHUP or scgictl, applied or
// rejected), STOPPING=1 on SIGTERM, all sent to $NOTIFY_SOCKET (here a socket
// of the test's own); its workers never get that socket.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iterator>
#include <string>

#include "../support/harness.hpp"
#include "../support/notify_socket.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// A reload's first notification: RELOADING=1 stamped with a CLOCK_MONOTONIC
// time taken after `started_usec` (systemd 253 pairs the reload with it).
void check_reloading(NotifySocket& notify, std::uint64_t started_usec) {
  const auto reloading = notify.next();
  REQUIRE(reloading);
  INFO(reloading->text());
  CHECK(reloading->has("RELOADING", "1"));
  const std::string stamp = reloading->field("MONOTONIC_USEC");
  REQUIRE(!stamp.empty());
  const std::uint64_t usec = std::stoull(stamp);
  CHECK(usec >= started_usec);
  CHECK(usec <= monotonic_usec());
}

// /proc/PID/environ, one variable per line.
std::string environment_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/environ");
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::replace(text.begin(), text.end(), '\0', '\n');
  return text;
}

}  // namespace

TEST_CASE("scgi-manager notifies systemd once it serves and around each reload and its stop",
          "[manager][systemd]") {
  TempDir dir;
  NotifySocket notify(dir);
  const ManagedPool spec{.listen = loopback(free_port()),
                         .command = sample_worker_command(),
                         .pool_keys = "workers = 2",
                         .metrics_port = free_port()};
  const std::string control_socket = dir.file("scgi.sock");
  const auto config = [&](const std::string& pool_keys) {
    ManagedPool changed = spec;
    changed.pool_keys = pool_keys;
    return managed_pool_config(changed, control_socket);
  };
  dir.write("scgi.toml", config(spec.pool_keys));
  Process manager =
      Process::start({built_binary("scgi-manager"), "--config", dir.file("scgi.toml")},
                     dir.file("manager.log"), notify.env());
  const auto ctl = [&](const std::string& command) {
    return run_scgictl(dir, {"--socket", control_socket, command});
  };

  const auto ready = notify.next(20s);
  REQUIRE(ready);
  INFO(ready->text() << "\n" << manager.log());
  CHECK(ready->has("READY", "1"));
  CHECK(ready->field("STATUS") == "serving 1 pool, 2 workers");
  // Nothing else waited for: the first request right after READY=1 is served
  // (queued while the workers start), and scgictl reaches the manager.
  CHECK(send_request(spec.listen, get_request("/first"), 10s).status() == 200);
  CHECK(ctl("status").exit_code == 0);

  // $NOTIFY_SOCKET is the manager's: a worker that sent READY=1 there would
  // speak for it. Read once both have exec'd (SCGI_POOL is theirs alone).
  std::set<pid_t> workers;
  REQUIRE(eventually([&] {
    workers = child_pids(manager.pid());
    return workers.size() == 2 && std::all_of(workers.begin(), workers.end(), [](pid_t pid) {
             return environment_of(pid).find("SCGI_POOL=app\n") != std::string::npos;
           });
  }));
  for (const pid_t worker : workers)
    CHECK(environment_of(worker).find("NOTIFY_SOCKET=") == std::string::npos);

  // A reload by SIGHUP, applied.
  dir.write("scgi.toml", config("workers = 3"));
  std::uint64_t started = monotonic_usec();
  manager.signal(SIGHUP);
  check_reloading(notify, started);
  const auto applied = notify.next();
  REQUIRE(applied);
  CHECK(applied->has("READY", "1"));
  CHECK(applied->field("STATUS") == "reload applied: serving 1 pool, 3 workers");

  // One by scgictl, rejected: it ends with READY=1 too, the manager serves on.
  dir.write("scgi.toml", "[[pool]]\nname = \"app\"\nlisten = 42\n");
  started = monotonic_usec();
  CHECK(ctl("reload").exit_code != 0);
  check_reloading(notify, started);
  const auto rejected = notify.next();
  REQUIRE(rejected);
  CHECK(rejected->has("READY", "1"));
  CHECK(rejected->field("STATUS") ==
        "reload rejected (see the log), the running configuration stays: serving 1 pool, 3 "
        "workers");
  CHECK(send_request(spec.listen, get_request("/after"), 10s).status() == 200);

  manager.signal(SIGTERM);
  const auto stopping = notify.next();
  REQUIRE(stopping);
  CHECK(stopping->has("STOPPING", "1"));
  CHECK(stopping->field("STATUS").find("stopping") == 0);
  const auto status = manager.wait(60s);
  REQUIRE(status);
  CHECK(exited_with(*status, 0));
  CHECK_FALSE(notify.next(0ms));  // nothing after STOPPING=1
}
