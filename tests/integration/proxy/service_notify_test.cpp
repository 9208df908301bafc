// scgi-proxy under systemd's Type=notify: READY=1 once it serves, RELOADING=1
// and READY=1 around every reload (applied or rejected), STOPPING=1 on
// SIGTERM, all sent to $NOTIFY_SOCKET (here a socket of the test's own).
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <csignal>
#include <string>

#include "../support/harness.hpp"
#include "../support/notify_socket.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// A reload's first notification: RELOADING=1 stamped with a CLOCK_MONOTONIC
// time taken after `signalled_usec` (systemd 253 pairs the reload with it).
void check_reloading(NotifySocket& notify, std::uint64_t signalled_usec) {
  const auto reloading = notify.next();
  REQUIRE(reloading);
  INFO(reloading->text());
  CHECK(reloading->has("RELOADING", "1"));
  const std::string stamp = reloading->field("MONOTONIC_USEC");
  REQUIRE(!stamp.empty());
  const std::uint64_t usec = std::stoull(stamp);
  CHECK(usec >= signalled_usec);
  CHECK(usec <= monotonic_usec());
}

}  // namespace

TEST_CASE("scgi-proxy notifies systemd once it serves and around each reload and its stop",
          "[proxy][systemd]") {
  TempDir dir;
  SampleWorker worker(dir, "w1");
  NotifySocket notify(dir);
  const Address listen = loopback(free_port());
  const auto config = [&](const std::string& pool_keys) {
    return one_pool_config(
        {.listen = listen, .backends = {worker.address()}, .pool_keys = pool_keys});
  };
  dir.write("proxy.toml", config(""));
  Process proxy = Process::start({built_binary("scgi-proxy"), "--config", dir.file("proxy.toml")},
                                 dir.file("proxy.log"), notify.env());

  const auto ready = notify.next(20s);
  REQUIRE(ready);
  INFO(ready->text() << "\n" << proxy.log());
  CHECK(ready->has("READY", "1"));
  CHECK(ready->field("STATUS") == "serving 1 pool");
  // Nothing else waited for: the first request right after READY=1 is served.
  CHECK(send_request(listen, get_request("/first"), 5s).status() == 200);

  // An applied reload.
  dir.write("proxy.toml", config("queue_timeout = \"8s\""));
  std::uint64_t signalled = monotonic_usec();
  proxy.signal(SIGHUP);
  check_reloading(notify, signalled);
  const auto applied = notify.next();
  REQUIRE(applied);
  CHECK(applied->has("READY", "1"));
  CHECK(applied->field("STATUS") == "reload applied: serving 1 pool");

  // A rejected one ends with READY=1 too: the proxy serves on.
  dir.write("proxy.toml", "[[pool]]\nname = \"app\"\nlisten = 42\n");
  signalled = monotonic_usec();
  proxy.signal(SIGHUP);
  check_reloading(notify, signalled);
  const auto rejected = notify.next();
  REQUIRE(rejected);
  CHECK(rejected->has("READY", "1"));
  CHECK(rejected->field("STATUS").find("reload rejected") == 0);
  CHECK(send_request(listen, get_request("/after"), 5s).status() == 200);

  proxy.signal(SIGTERM);
  const auto stopping = notify.next();
  REQUIRE(stopping);
  CHECK(stopping->has("STOPPING", "1"));
  CHECK(stopping->field("STATUS").find("stopping") == 0);
  const auto status = proxy.wait(20s);
  REQUIRE(status);
  CHECK(exited_with(*status, 0));
  CHECK_FALSE(notify.next(0ms));  // nothing after STOPPING=1
}

TEST_CASE("scgi-proxy serves when nobody listens on its notification socket", "[proxy][systemd]") {
  TempDir dir;
  SampleWorker worker(dir, "w1");
  const Address listen = loopback(free_port());
  dir.write("proxy.toml", one_pool_config({.listen = listen, .backends = {worker.address()}}));
  Process proxy =
      Process::start({built_binary("scgi-proxy"), "--config", dir.file("proxy.toml")},
                     dir.file("proxy.log"), {{"NOTIFY_SOCKET", dir.file("nobody.sock")}});
  REQUIRE(wait_until_accepting(listen));
  INFO(proxy.log());
  CHECK(send_request(listen, get_request("/"), 5s).status() == 200);
  CHECK(eventually(
      [&] { return proxy.log().find("cannot notify the service manager") != std::string::npos; }));
  proxy.signal(SIGTERM);
  const auto status = proxy.wait(20s);
  REQUIRE(status);
  CHECK(exited_with(*status, 0));
}
