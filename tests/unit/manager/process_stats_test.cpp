#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <functional>
#include <string>

#include "process_stats.hpp"
#include "usage_sampler.hpp"

using scgi::manager::read_all_group_usage;
using scgi::manager::read_group_usage;
using scgi::manager::read_process_usage;

namespace {

constexpr std::uint64_t kMiB = 1024 * 1024;

// A forked child that runs `setup`, reports a number back (its "ready"
// signal), then sleeps until killed. Killed and reaped when it goes out of
// scope, with its whole process group when it made one.
class Child {
 public:
  explicit Child(const std::function<long()>& setup) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::close(fds[0]);
      const long report = setup();
      if (::write(fds[1], &report, sizeof report) != sizeof report) ::_exit(1);
      for (;;)
        ::pause();
    }
    ::close(fds[1]);
    REQUIRE(::read(fds[0], &report_, sizeof report_) == sizeof report_);
    ::close(fds[0]);
  }
  ~Child() {
    if (::getpgid(pid_) == pid_) ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  long report() const { return report_; }

 private:
  pid_t pid_ = -1;
  long report_ = 0;
};

// Maps and touches `bytes`, so that every page is resident.
void touch_memory(std::uint64_t bytes) {
  void* memory = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) ::_exit(1);
  std::memset(memory, 0x5a, bytes);
}

double own_cpu_seconds() {
  timespec now{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) / 1e9;
}

}  // namespace

TEST_CASE("this process has resident memory", "[manager][process_stats]") {
  const auto usage = read_process_usage(::getpid());
  REQUIRE(usage);
  CHECK(usage.value().rss_bytes > 0);
  CHECK(usage.value().cpu_seconds >= 0);
}

TEST_CASE("a child that touches 64 MiB shows at least 64 MiB resident",
          "[manager][process_stats]") {
  const auto before = read_process_usage(::getpid());
  REQUIRE(before);
  Child child([] {
    touch_memory(64 * kMiB);
    return 0L;
  });
  const auto usage = read_process_usage(child.pid());
  REQUIRE(usage);
  CHECK(usage.value().rss_bytes >= 64 * kMiB);
#ifndef __SANITIZE_THREAD__  // TSan's shadow of the touched pages is resident too (4x their size)
  CHECK(usage.value().rss_bytes < before.value().rss_bytes + 96 * kMiB);
#endif
}

TEST_CASE("a child that burns CPU, named with spaces and parentheses, shows its CPU time",
          "[manager][process_stats]") {
  Child child([] {
    // /proc/PID/stat shows the name in parentheses: the fields after it must still parse.
    ::prctl(PR_SET_NAME, ") x (y) 1 2 3");
    volatile std::uint64_t spin = 0;
    while (own_cpu_seconds() < 0.3)
      for (int i = 0; i < 100000; ++i)
        spin = spin + 1;
    return 0L;
  });
  const auto usage = read_process_usage(child.pid());
  REQUIRE(usage);
  CHECK(usage.value().cpu_seconds >= 0.2);
  CHECK(usage.value().cpu_seconds < 5);
}

TEST_CASE("a process that is gone gives an error", "[manager][process_stats]") {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) ::_exit(0);
  REQUIRE(::waitpid(pid, nullptr, 0) == pid);
  const auto usage = read_process_usage(pid);
  REQUIRE_FALSE(usage);
  CHECK(usage.error().find("/proc/" + std::to_string(pid) + "/stat") != std::string::npos);
  CHECK_FALSE(read_group_usage(pid));
}

TEST_CASE("a process group's usage sums the parent and the child it forked",
          "[manager][process_stats]") {
  // The child leads its own group (as a worker does after setsid), forks a
  // grandchild, and both touch 40 MiB; it reports the grandchild's pid.
  Child leader([] {
    if (::setpgid(0, 0) != 0) ::_exit(1);
    int ready[2];
    if (::pipe(ready) != 0) ::_exit(1);
    const pid_t grandchild = ::fork();
    if (grandchild < 0) ::_exit(1);
    if (grandchild == 0) {
      touch_memory(40 * kMiB);
      char byte = 'r';
      if (::write(ready[1], &byte, 1) != 1) ::_exit(1);
      for (;;)
        ::pause();
    }
    touch_memory(40 * kMiB);
    char byte = 0;
    if (::read(ready[0], &byte, 1) != 1) ::_exit(1);
    return static_cast<long>(grandchild);
  });
  const auto grandchild = static_cast<pid_t>(leader.report());

  const auto group = read_group_usage(leader.pid());
  const auto parent = read_process_usage(leader.pid());
  const auto child = read_process_usage(grandchild);
  REQUIRE(group);
  REQUIRE(parent);
  REQUIRE(child);
  CHECK(parent.value().rss_bytes >= 40 * kMiB);
  CHECK(child.value().rss_bytes >= 40 * kMiB);
  CHECK(group.value().rss_bytes >= 80 * kMiB);
  // Both, and no one else: the same pages, counted a moment apart.
  const std::uint64_t both = parent.value().rss_bytes + child.value().rss_bytes;
  CHECK(group.value().rss_bytes + kMiB >= both);
  CHECK(group.value().rss_bytes <= both + kMiB);

  // This process is in another group: its own usage is not in the sum.
  const auto own_group = read_group_usage(::getpgrp());
  REQUIRE(own_group);
  CHECK(own_group.value().rss_bytes > 0);
}

TEST_CASE("one pass over /proc gives every group what read_group_usage gives it",
          "[manager][process_stats]") {
  Child leader([] {
    if (::setpgid(0, 0) != 0) ::_exit(1);
    touch_memory(20 * kMiB);
    return 0L;
  });
  const auto all = read_all_group_usage();
  REQUIRE(all);
  const auto found = all.value().find(leader.pid());
  REQUIRE(found != all.value().end());
  CHECK(found->second.rss_bytes >= 20 * kMiB);
  CHECK(all.value().count(::getpgrp()) == 1);
  const auto one = read_group_usage(leader.pid());
  REQUIRE(one);
  // The same pages, read a moment apart.
  CHECK(one.value().rss_bytes + kMiB >= found->second.rss_bytes);
  CHECK(one.value().rss_bytes <= found->second.rss_bytes + kMiB);
}

TEST_CASE("the usage sampler reads /proc at most once per period", "[manager][process_stats]") {
  Child leader([] {
    if (::setpgid(0, 0) != 0) ::_exit(1);
    touch_memory(20 * kMiB);
    return 0L;
  });
  scgi::manager::UsageSampler sampler(std::chrono::seconds(1));
  const auto start = scgi::manager::UsageSampler::Clock::now();
  const auto first = sampler.group(leader.pid(), start);
  REQUIRE(first);
  CHECK(first->rss_bytes >= 20 * kMiB);
  // A group born after the pass is not seen until the next one.
  Child later([] {
    if (::setpgid(0, 0) != 0) ::_exit(1);
    return 0L;
  });
  CHECK_FALSE(sampler.group(later.pid(), start + std::chrono::milliseconds(999)));
  CHECK(sampler.group(later.pid(), start + std::chrono::seconds(1)));
}
