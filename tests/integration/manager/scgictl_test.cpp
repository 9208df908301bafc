// The real scgictl binary against an in-process ControlServer with a scripted
// handler: its output and exit codes as a shell sees them, and `logs -f`
// streaming until the process is stopped. (scgictl against a real
// scgi-manager is the end-to-end test's business.)
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>

#include "../../unit/manager/scripted_control.hpp"
#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

struct Outcome {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

Outcome run_scgictl(const TempDir& dir, std::vector<std::string> arguments,
                    const std::string& name) {
  arguments.insert(arguments.begin(), built_binary("scgictl"));
  Process process = Process::start(arguments, dir.file(name + ".log"));
  const auto status = process.wait(10s);
  REQUIRE(status);
  REQUIRE(WIFEXITED(*status));
  return {WEXITSTATUS(*status), process.log()};
}

}  // namespace

TEST_CASE("scgictl status prints the pools and workers and exits 0", "[scgictl]") {
  TempDir dir;
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  const Outcome outcome = run_scgictl(dir, {"--socket", server.path(), "status"}, "status");
  INFO(outcome.output);
  CHECK(outcome.exit_code == 0);
  CHECK_THAT(outcome.output,
             Catch::StartsWith("POOL  LISTEN          READY/TARGET  QUEUE  FAILING\n"
                               "app   127.0.0.1:4000  1/2           3      no\n"));
  CHECK_THAT(outcome.output, Catch::Contains("app:1   -     backoff"));
}

TEST_CASE("scgictl exit codes: 1 failed, 2 usage, 3 unreachable", "[scgictl]") {
  TempDir dir;
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));

  const Outcome done = run_scgictl(dir, {"--socket", server.path(), "restart", "app"}, "done");
  CHECK(done.exit_code == 0);
  CHECK(done.output == "done\n");
  server.on_loop([&] { server.handler().fail_next = true; });
  const Outcome refused = run_scgictl(dir, {"--socket", server.path(), "stop", "app"}, "refused");
  CHECK(refused.exit_code == 1);
  CHECK(refused.output == "scgictl: it went wrong\n");

  const Outcome usage = run_scgictl(dir, {"scale", "app"}, "usage");
  CHECK(usage.exit_code == 2);

  const Outcome unreachable =
      run_scgictl(dir, {"--socket", folder.file("gone.sock"), "status"}, "unreachable");
  CHECK(unreachable.exit_code == 3);
  CHECK_THAT(unreachable.output, Catch::Contains(folder.file("gone.sock")) &&
                                     Catch::Contains("is scgi-manager running?"));
}

TEST_CASE("scgictl logs -f prints lines as workers write them until stopped", "[scgictl]") {
  TempDir dir;
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().recent = {"old line"}; });
  Process follower =
      Process::start({built_binary("scgictl"), "--socket", server.path(), "logs", "app", "-f"},
                     dir.file("follow.log"));
  REQUIRE(eventually([&] { return follower.log() == "old line\n"; }));
  REQUIRE(eventually_on(server, [&] { return server.handler().subscribers.size() == 1; }));

  server.on_loop([&] {
    server.handler().emit("new line 1");
    server.handler().emit("new line 2");
  });
  CHECK(eventually([&] { return follower.log() == "old line\nnew line 1\nnew line 2\n"; }));
  CHECK(follower.running());

  follower.stop(SIGTERM, 5s);
  CHECK(eventually_on(server, [&] { return server.handler().subscribers.empty(); }));
}
