#include <catch2/catch.hpp>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <string>
#include <thread>

#include "process_snapshot.hpp"
#include "slow_log.hpp"

using namespace scgi::manager;

namespace {

SlowEntry entry(std::uint64_t id, const std::string& pool) {
  SlowEntry made;
  made.id = id;
  made.pool = pool;
  made.uri = "/r" + std::to_string(id);
  return made;
}

}  // namespace

TEST_CASE("the slow log keeps the last entries of each pool, oldest first", "[slow-log]") {
  SlowLog log;
  for (std::uint64_t id = 1; id <= SlowLog::kEntriesPerPool + 10; ++id)
    log.add(entry(id, id % 2 == 0 ? "app" : "api"));
  log.add(entry(1000, "web"));
  const auto app = log.entries("app");
  REQUIRE(app.size() == (SlowLog::kEntriesPerPool + 10) / 2);
  CHECK(app.front().id == 2);
  CHECK(log.entries("").size() == SlowLog::kEntriesPerPool + 10 + 1);

  for (std::uint64_t id = 1; id <= 200; ++id)
    log.add(entry(2000 + id, "app"));
  const auto bounded = log.entries("app");
  CHECK(bounded.size() == SlowLog::kEntriesPerPool);
  CHECK(bounded.front().id == 2151);
  CHECK(bounded.back().id == 2200);
  // An entry pushed out takes no more output and no end.
  log.add_output(2, "late");
  log.end(2, 200, std::chrono::seconds(1));
  log.forget("app");
  CHECK(log.entries("app").empty());
  CHECK(log.entries("web").size() == 1);
}

TEST_CASE("a slow request's output is kept up to its bounds, and its end recorded", "[slow-log]") {
  SlowLog log;
  log.add(entry(7, "app"));
  for (std::size_t i = 0; i < SlowLog::kOutputLines + 5; ++i)
    log.add_output(7, "line " + std::to_string(i));
  log.end(7, 504, std::chrono::milliseconds(2500));
  const SlowEntry kept = log.entries("app").at(0);
  CHECK(kept.output.size() == SlowLog::kOutputLines);
  CHECK(kept.output_cut);
  CHECK(kept.status == 504);
  CHECK(kept.total_running == std::chrono::milliseconds(2500));

  log.add(entry(8, "app"));
  log.add_output(8, std::string(SlowLog::kOutputBytes, 'x'));
  log.add_output(8, "one byte too many");
  CHECK(log.entries("app").at(1).output.size() == 1);
  CHECK(log.entries("app").at(1).output_cut);
}

TEST_CASE("a process snapshot reads the state and the system call from /proc", "[slow-log]") {
  // A child asleep in nanosleep, as a worker in a slow request may be.
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::sleep(10);
    ::_exit(0);
  }
  ProcessSnapshot asleep;
  for (int i = 0; i < 200 && asleep.syscall.find("nanosleep") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    asleep = snapshot_process(child);
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  CHECK(asleep.state == "S (sleeping)");
  CHECK(asleep.syscall.find("nanosleep") != std::string::npos);
  CHECK(asleep.wchan.find("nanosleep") != std::string::npos);
  // Root reads the kernel stack; anyone else is told why there is none.
  CHECK(asleep.kernel_stack.empty() != asleep.kernel_stack_error.empty());

  CHECK(describe_syscall(SYS_read) == "read (" + std::to_string(SYS_read) + ")");
  CHECK(describe_syscall(SYS_clock_nanosleep) ==
        "clock_nanosleep (" + std::to_string(SYS_clock_nanosleep) + ")");
  CHECK(describe_syscall(99999) == "syscall 99999");

  // A process that is gone: nothing, not an error.
  const ProcessSnapshot gone = snapshot_process(0x3fffffff);
  CHECK(gone.state.empty());
}
