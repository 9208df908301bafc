// scgi-manager's upgrade in place (scgictl upgrade, SIGUSR2) against the real
// binaries: under load it fails no request and keeps the PID, the workers,
// their output and every counter; a broken new program changes nothing; a
// rolling restart, a drained worker and queued requests come through it.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "../support/harness.hpp"
#include "../support/scrape_checks.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// A copy of the built scgi-manager in `dir`, to run and then replace as a
// package upgrade replaces /usr/bin/scgi-manager (write aside, rename over).
std::string program_copy(const TempDir& dir) {
  const std::string path = dir.file("scgi-manager");
  std::filesystem::copy_file(built_binary("scgi-manager"), path,
                             std::filesystem::copy_options::overwrite_existing);
  return path;
}

void replace_program(const TempDir& dir, const std::string& program, const std::string& content) {
  const std::string aside = program + ".new";
  if (content.empty()) {
    std::filesystem::copy_file(built_binary("scgi-manager"), aside,
                               std::filesystem::copy_options::overwrite_existing);
  } else {
    dir.write("scgi-manager.new", content);
    ::chmod(aside.c_str(), 0755);
  }
  std::filesystem::rename(aside, program);
}

// How many times `text` occurs in the manager's log.
std::size_t occurrences(const std::string& log, const std::string& text) {
  std::size_t count = 0;
  for (auto at = log.find(text); at != std::string::npos; at = log.find(text, at + 1))
    ++count;
  return count;
}

// A worker that also prints a line every 100 ms (its output must stay captured).
std::vector<std::string> ticking_worker_command() {
  return {
      "/bin/sh", "-c",
      "(n=0; while :; do n=$((n+1)); echo tick-$n; sleep 0.1; done) & exec \"$0\" --port \"$1\"",
      built_binary("scgi-sample-worker"), "{port}"};
}

}  // namespace

TEST_CASE("five upgrades under load fail no request and keep the PID, workers, output and counters",
          "[manager][upgrade][zero-downtime]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = ticking_worker_command(),
                          .pool_keys = "workers = 3\nsocket = \"port\"",
                          .program = program_copy(dir)},
                         3);
  const pid_t manager_pid = manager.process().pid();
  const std::set<pid_t> workers = manager.worker_pids();
  REQUIRE(workers.size() == 3);
  Process load = start_load(dir, listen, "8s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return manager.served() >= 50; }));
  // Scrapes back to back meanwhile (an upgrade takes tens of milliseconds):
  // each answered, no counter ever lower.
  ScrapeLoad scrapes(manager.metrics_port(), 2ms);

  for (int round = 1; round <= 5; ++round) {
    INFO("upgrade " << round);
    const std::string before = manager.scrape();
    const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
    INFO(upgrade.out << upgrade.err << manager.process().log());
    REQUIRE(upgrade.exit_code == 0);
    CHECK(upgrade.out.find("upgraded in place") != std::string::npos);
    CHECK(upgrade.out.find("pid " + std::to_string(manager_pid)) != std::string::npos);
    CHECK(occurrences(manager.process().log(), "took over from") == static_cast<size_t>(round));
    CHECK(manager.process().running());
    CHECK(manager.worker_pids() == workers);
    const auto lower = went_down(before, manager.scrape());
    INFO(fmt::format("{}", fmt::join(lower, "\n")));
    CHECK(lower.empty());
    CHECK(send_request(listen, get_request("/")).status() == 200);
  }
  scrapes.stop();
  INFO(fmt::format("{} scrapes; failed: {}", scrapes.scrapes(),
                   fmt::join(scrapes.failures(), "; ")));
  CHECK(scrapes.failures().empty());
  CHECK(scrapes.scrapes() >= 20);
  const nlohmann::json report = finish_load(load);
  const std::string log = manager.process().log();
  INFO(report.dump() << log);
  CHECK(report["requests"].get<int>() > 500);
  CHECK(report["errors"].get<int>() == 0);
  CHECK(manager.worker_pids() == workers);
  CHECK(metric_value(manager.scrape(), "scgi_upgrades_total{result=\"done\"}") == 5);

  // Still captured: each worker's lines go on after the last upgrade.
  const std::size_t last = log.rfind("took over from");
  CHECK(eventually([&] {
    const std::string now = manager.process().log();
    return now.find("app[0]", last) != std::string::npos &&
           now.find("tick-", now.find("app[0]", last)) != std::string::npos;
  }));
  const CtlRun status = scgictl(dir, manager, {"--json", "status", "app"});
  INFO(status.out << status.err);
  CHECK(status.exit_code == 0);
  const auto pools = nlohmann::json::parse(status.out.substr(status.out.find('{')))["pools"];
  for (const auto& worker : pools[0]["workers"]) {
    CHECK(worker["state"] == "ready");
    CHECK(workers.count(worker["pid"].get<pid_t>()) == 1);
    CHECK(worker["requests"].get<int>() > 100);  // counted before and after
  }
}

TEST_CASE("SIGUSR2 upgrades the manager as scgictl upgrade does", "[manager][upgrade]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);
  const std::set<pid_t> workers = manager.worker_pids();
  manager.process().signal(SIGUSR2);
  REQUIRE(eventually(
      [&] { return manager.process().log().find("took over from") != std::string::npos; }));
  CHECK(manager.worker_pids() == workers);
  CHECK(send_request(listen, get_request("/")).status() == 200);
  CHECK(scgictl(dir, manager, {"status"}).exit_code == 0);
}

TEST_CASE("a new program that cannot start or cannot read the state changes nothing",
          "[manager][upgrade]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  const std::string program = program_copy(dir);
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 2",
                          .program = program},
                         2);
  const pid_t manager_pid = manager.process().pid();
  const std::set<pid_t> workers = manager.worker_pids();
  Process load = start_load(dir, listen, "6s", "load.json", {"--query", "sleep_ms=2"});
  REQUIRE(eventually([&] { return manager.served() >= 50; }));

  // 1. A program that exits at once.
  replace_program(dir, program, "#!/bin/sh\necho 'broken build' >&2\nexit 1\n");
  const CtlRun exits = scgictl(dir, manager, {"upgrade"});
  INFO(exits.out << exits.err);
  CHECK(exits.exit_code == 1);
  CHECK(exits.err.find("upgrade failed") != std::string::npos);
  CHECK(exits.err.find("broken build") != std::string::npos);
  CHECK(exits.err.find("serves on") != std::string::npos);

  // 2. A program that reads a state it cannot understand (another format).
  const std::string real = dir.file("real-scgi-manager");
  std::filesystem::copy_file(built_binary("scgi-manager"), real);
  replace_program(dir, program,
                  "#!/bin/sh\n"
                  "python3 - <<'EOF'\n"
                  "import json, os\n"
                  "fd = int(os.environ['SCGI_UPGRADE_STATE_FD'])\n"
                  "state = json.loads(os.pread(fd, 1 << 26, 0))\n"
                  "state['format'] = 99\n"
                  "text = json.dumps(state).encode()\n"
                  "os.ftruncate(fd, 0); os.pwrite(fd, text, 0)\n"
                  "EOF\n"
                  "exec " +
                      real + " \"$@\"\n");
  const CtlRun unreadable = scgictl(dir, manager, {"upgrade"});
  INFO(unreadable.out << unreadable.err);
  CHECK(unreadable.exit_code == 1);
  CHECK(unreadable.err.find("its format is 99") != std::string::npos);

  // 3. One that passes the check but fails to read the state once it runs:
  // the previous program comes back on its own copy and answers.
  replace_program(dir, program,
                  "#!/bin/sh\n"
                  "case \" $* \" in *' --upgrade-check '*) exec " +
                      real +
                      " \"$@\";; esac\n"
                      "python3 - <<'EOF'\n"
                      "import os\n"
                      "fd = int(os.environ['SCGI_UPGRADE_STATE_FD'])\n"
                      "os.ftruncate(fd, 0); os.pwrite(fd, b'not json', 0)\n"
                      "EOF\n"
                      "exec " +
                      real + " \"$@\"\n");
  const CtlRun undone = scgictl(dir, manager, {"upgrade"});
  INFO(undone.out << undone.err << manager.process().log());
  CHECK(undone.exit_code == 1);
  CHECK(undone.err.find("upgrade failed") != std::string::npos);
  CHECK(undone.err.find("not JSON") != std::string::npos);
  CHECK(manager.process().log().find("the previous program") != std::string::npos);

  // Through all of it: the same process and workers, nothing failed.
  CHECK(manager.process().running());
  CHECK(manager.process().pid() == manager_pid);
  CHECK(manager.worker_pids() == workers);
  // And with a good program back, the upgrade works.
  replace_program(dir, program, "");
  const CtlRun good = scgictl(dir, manager, {"upgrade"});
  INFO(good.out << good.err);
  CHECK(good.exit_code == 0);
  const std::string scrape = manager.scrape();
  CHECK(metric_value(scrape, "scgi_upgrades_total{result=\"failed\"}") == 3);
  CHECK(metric_value(scrape, "scgi_upgrades_total{result=\"done\"}") == 1);
  const nlohmann::json report = finish_load(load);
  INFO(report.dump() << manager.process().log());
  CHECK(report["errors"].get<int>() == 0);
  CHECK(manager.worker_pids() == workers);
}

TEST_CASE("a rolling restart, a drained worker and queued requests come through an upgrade",
          "[manager][upgrade][zero-downtime]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // Workers that take a while to be ready: the rolling restart is still running
  // when the upgrade is asked for.
  ManagerProcess manager(
      dir,
      {.listen = listen,
       .command = {"/bin/sh", "-c", "sleep 0.4; exec \"$0\" --port \"$1\"",
                   built_binary("scgi-sample-worker"), "{port}"},
       .pool_keys = "workers = 3\nsocket = \"port\"\nconcurrency = 1\nqueue_timeout = \"30s\""},
      3);
  CHECK(scgictl(dir, manager, {"drain", "app:2"}).exit_code == 0);
  Process load = start_load(dir, listen, "6s", "load.json", {"--query", "sleep_ms=20"});
  REQUIRE(eventually([&] { return manager.served() >= 20; }));

  Process restart = Process::start(scgictl_command(manager, {"restart", "app"}),
                                   dir.file("restart.out"), {}, dir.file("restart.err"));
  REQUIRE(eventually([&] {
    return manager.process().log().find("starting its replacement") != std::string::npos;
  }));
  const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
  INFO(upgrade.out << upgrade.err << manager.process().log());
  CHECK(upgrade.exit_code == 0);
  CHECK(manager.process().log().find("waiting for the rolling restart") != std::string::npos);
  const auto restarted = restart.wait(30s);
  REQUIRE(restarted);
  CHECK(WIFEXITED(*restarted));
  CHECK(WEXITSTATUS(*restarted) == 0);

  // The drain by hand carried over: the worker stays out of rotation.
  const CtlRun status = scgictl(dir, manager, {"--json", "status", "app"});
  const auto pools = nlohmann::json::parse(status.out.substr(status.out.find('{')))["pools"];
  bool found = false;
  for (const auto& worker : pools[0]["workers"])
    if (worker["index"] == 2 && worker["state"] == "ready") {
      found = true;
      CHECK(worker["drained"] == true);
    }
  CHECK(found);
  const nlohmann::json report = finish_load(load);
  INFO(report.dump() << manager.process().log());
  CHECK(report["requests"].get<int>() > 50);
  CHECK(report["errors"].get<int>() == 0);
}

TEST_CASE("a dynamic pool growing under load keeps its size and its workers through an upgrade",
          "[manager][upgrade][zero-downtime]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "min_workers = 1\nmax_workers = 4\nidle_timeout = \"30s\""},
                         1);
  Process load = start_load(dir, listen, "5s", "load.json", {"--query", "sleep_ms=50"});
  // Growing: more than the minimum wanted, not all of them ready yet or just so.
  REQUIRE(eventually([&] { return manager.workers("ready") >= 2; }, 5s));
  const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
  INFO(upgrade.out << upgrade.err << manager.process().log());
  CHECK(upgrade.exit_code == 0);
  const std::set<pid_t> after_upgrade = manager.worker_pids();
  // The target carried over: it goes on to the maximum, not back to the minimum.
  CHECK(manager.wait_workers("ready", 4, 10s));
  const std::set<pid_t> grown = manager.worker_pids();
  for (const pid_t pid : after_upgrade)
    CHECK(grown.count(pid) == 1);
  const nlohmann::json report = finish_load(load);
  INFO(report.dump());
  CHECK(report["errors"].get<int>() == 0);
  CHECK(manager.process().log().find("shrinking") == std::string::npos);
}

namespace {

// The descriptors of `pid` (numbers), and of those the ones without close-on-exec.
std::set<int> open_descriptors(pid_t pid) {
  std::set<int> fds;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    fds.insert(std::stoi(it->path().filename().string()));
  return fds;
}

std::set<int> inheritable_descriptors(pid_t pid) {
  std::set<int> out;
  for (const int fd : open_descriptors(pid)) {
    std::ifstream info("/proc/" + std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
    for (std::string line; std::getline(info, line);)
      if (line.starts_with("flags:") &&
          (std::stoul(line.substr(6), nullptr, 8) & 02000000) == 0)  // O_CLOEXEC
        out.insert(fd);
  }
  return out;
}

}  // namespace

TEST_CASE("after an upgrade nothing handed over stays inheritable, and new workers get none of it",
          "[manager][upgrade][security]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagedPool spec{
      .listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"};
  ManagerProcess manager(dir, spec, 2);
  const pid_t manager_pid = manager.process().pid();
  // What it inherited itself (the test's standard streams and the like).
  const std::set<int> inherited = inheritable_descriptors(manager_pid);
  // A file changed since it was applied: the new program would read it, so
  // the upgrade is refused until a reload has applied it.
  const Address second = loopback(free_port());
  spec.metrics_port = manager.metrics_port();
  dir.write("scgi.toml", managed_pool_config(spec, manager.control_socket()) +
                             "[[pool]]\nname = \"two\"\nlisten = \"" + second.to_string() +
                             "\"\ncommand = [\"" + built_binary("scgi-sample-worker") +
                             "\"]\nworkers = 1\nallow_root = true\n");
  const CtlRun refused = scgictl(dir, manager, {"upgrade"});
  INFO(refused.out << refused.err);
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("differs from the running configuration (pool two: added): run scgictl "
                         "reload first") != std::string::npos);
  REQUIRE(scgictl(dir, manager, {"reload"}).exit_code == 0);
  const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
  INFO(upgrade.out << upgrade.err << manager.process().log());
  REQUIRE(upgrade.exit_code == 0);
  REQUIRE(wait_until_accepting(second));
  REQUIRE(eventually([&] { return manager.worker_pids().size() == 3; }));
  // The manager: nothing is inheritable that was not before the upgrade
  // (and what it had inherited itself is closed by it). A client's socket
  // is, for a moment (the accept does not set close-on-exec; a worker's start
  // and an upgrade close all but what they hand on): eventually none is left.
  const auto only_inherited = [&] {
    const std::set<int> now = inheritable_descriptors(manager_pid);
    return std::includes(inherited.begin(), inherited.end(), now.begin(), now.end());
  };
  CHECK(eventually(only_inherited, 5s));
  // Workers started by the new program (the new pool's, and a restarted one)
  // have their standard streams and their socket (fd 3) only: no socket,
  // pipe or state of the manager.
  REQUIRE(scgictl(dir, manager, {"restart", "app:0"}).exit_code == 0);
  for (const pid_t pid : manager.worker_pids()) {
    INFO("worker " << pid);
    CHECK(open_descriptors(pid) == std::set<int>{0, 1, 2, 3});
  }
  CHECK(send_request(second, get_request("/")).status() == 200);
}

TEST_CASE("during an upgrade's pause, changes are refused and a SIGTERM stops the manager cleanly",
          "[manager][upgrade]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);
  const std::set<pid_t> workers = manager.worker_pids();
  // A slow request keeps the pause open: the upgrade waits for it.
  auto slow = std::async(std::launch::async, [&] {
    return send_request(listen, get_request("/?sleep_ms=2000"), 10s).status();
  });
  REQUIRE(eventually([&] { return metric_sum(manager.scrape(), "scgi_requests_in_flight") >= 1; }));
  Process upgrade = Process::start(scgictl_command(manager, {"upgrade"}), dir.file("upgrade.out"),
                                   {}, dir.file("upgrade.err"));
  REQUIRE(eventually([&] {
    return manager.process().log().find("pausing the front doors") != std::string::npos;
  }));
  const CtlRun scale = scgictl(dir, manager, {"scale", "app", "3"});
  INFO(scale.out << scale.err);
  CHECK(scale.exit_code == 1);
  CHECK(scale.err.find("an upgrade in place is running") != std::string::npos);

  manager.process().signal(SIGTERM);
  const auto upgrade_status = upgrade.wait(20s);
  const auto stopped = manager.process().wait(20s);
  const std::string log = manager.process().log();
  INFO(log);
  REQUIRE(stopped);
  CHECK(WIFEXITED(*stopped));
  CHECK(WEXITSTATUS(*stopped) == 0);  // a clean stop, not a death
  CHECK(log.find("upgrade failed: the manager began to stop") != std::string::npos);
  CHECK(log.find("took over from") == std::string::npos);
  REQUIRE(upgrade_status);
  CHECK(WEXITSTATUS(*upgrade_status) != 0);
  CHECK(slow.get() == 200);  // the request in flight finished
  for (const pid_t pid : workers)
    CHECK_FALSE(process_exists(pid));
}

TEST_CASE("no other process can take the metrics port during an upgrade",
          "[manager][upgrade][security]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(
      dir, {.listen = listen, .command = sample_worker_command(), .pool_keys = "workers = 2"}, 2);
  const pid_t manager_pid = manager.process().pid();
  // Another local process tries to bind the metrics port all through the
  // upgrade: the listening socket is handed over, never closed, so it cannot
  // (it used to get it while the old image had let go).
  std::atomic<bool> give_up = false;
  auto squatter = std::async(std::launch::async, [&]() -> int {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;  // past the scrapes' connections in TIME_WAIT
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(manager.metrics_port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!give_up && std::chrono::steady_clock::now() < deadline) {
      if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
          ::listen(fd, 1) == 0)
        return fd;
    }
    ::close(fd);
    return -1;
  });
  const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
  give_up = true;
  const int squatted = squatter.get();
  if (squatted >= 0) ::close(squatted);
  INFO(upgrade.out << upgrade.err << manager.process().log());
  CHECK(squatted < 0);
  CHECK(upgrade.exit_code == 0);
  CHECK(manager.process().pid() == manager_pid);
  CHECK(metric_value(manager.scrape(), "scgi_upgrades_total{result=\"done\"}") == 1);
}

TEST_CASE("a worker's stop_timeout runs on through an upgrade instead of starting over",
          "[manager][upgrade]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // Its shell ignores SIGTERM: only the SIGKILL at stop_timeout ends it.
  ManagerProcess manager(
      dir,
      {.listen = listen,
       .command = {"/bin/sh", "-c",
                   "trap '' TERM; \"$0\" --port \"$1\" & while :; do sleep 0.2; done",
                   built_binary("scgi-sample-worker"), "{port}"},
       .pool_keys = "workers = 1\nsocket = \"port\"\nstop_timeout = \"6s\""},
      1);
  const auto stopped_at = std::chrono::steady_clock::now();
  Process stop = Process::start(scgictl_command(manager, {"stop", "app:0"}), dir.file("stop.out"),
                                {}, dir.file("stop.err"));
  REQUIRE(manager.wait_workers("stopping", 1, 5s));
  std::this_thread::sleep_for(3s);  // half of stop_timeout gone before the upgrade
  const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
  INFO(upgrade.out << upgrade.err << manager.process().log());
  REQUIRE(upgrade.exit_code == 0);
  REQUIRE(eventually(
      [&] {
        return manager.process().log().find("did not stop within stop_timeout") !=
               std::string::npos;
      },
      15s));
  // At 6 s after the stop, not 6 s after the upgrade (9 s): 2 s of slack.
  CHECK(std::chrono::steady_clock::now() - stopped_at < 8s);
  stop.wait(5s);
}

namespace {

// A worker whose shell prints what the test sends it on the FIFO `fifo` (one
// line each, as printf's %b reads it: "\\n" is a newline, none is added),
// next to the sample worker serving. Neither adds output of its own to stdout.
std::vector<std::string> prompted_worker_command(const std::string& fifo) {
  return {"/bin/sh", "-c",
          "while read -r text; do printf '%b' \"$text\"; done < \"$1\" & exec \"$0\"",
          built_binary("scgi-sample-worker"), fifo};
}

// The FIFO of prompted_worker_command, made and held open by the test (read
// and write: opening neither side blocks, and the worker never sees its end).
class Prompt {
 public:
  explicit Prompt(const std::string& path) {
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    fd_ = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd_ >= 0);
  }
  ~Prompt() { ::close(fd_); }
  Prompt(const Prompt&) = delete;
  Prompt& operator=(const Prompt&) = delete;
  void say(const std::string& text) {
    const std::string line = text + "\n";
    REQUIRE(::write(fd_, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
  }

 private:
  int fd_ = -1;
};

// Where each of `texts` is in `out`, which must hold each exactly once.
std::vector<std::size_t> positions_once(const std::string& out,
                                        const std::vector<std::string>& texts) {
  std::vector<std::size_t> at;
  for (const std::string& text : texts) {
    INFO(text);
    CHECK(occurrences(out, text) == 1);
    at.push_back(out.find(text));
  }
  return at;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("scgictl logs shows a worker's lines from before an upgrade, then those after",
          "[manager][upgrade]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  Prompt prompt(dir.file("prompt"));
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = prompted_worker_command(dir.file("prompt")),
                          .pool_keys = "workers = 1"},
                         1);
  prompt.say("before-1\\nbefore-2\\nbefore-3\\n");
  REQUIRE(eventually([&] {
    return scgictl(dir, manager, {"logs", "app"}).out.find("before-3") != std::string::npos;
  }));
  const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
  INFO(upgrade.out << upgrade.err << manager.process().log());
  REQUIRE(upgrade.exit_code == 0);
  prompt.say("after-1\\n");
  REQUIRE(eventually([&] {
    return scgictl(dir, manager, {"logs", "app"}).out.find("after-1") != std::string::npos;
  }));
  const CtlRun logs = scgictl(dir, manager, {"logs", "app"});
  INFO(logs.out << logs.err);
  CHECK(logs.exit_code == 0);
  const auto at =
      positions_once(logs.out, {"| before-1\n", "| before-2\n", "| before-3\n", "| after-1\n"});
  CHECK(std::is_sorted(at.begin(), at.end()));
  // One worker's lines too, and -n counts back from the newest.
  const CtlRun last_two = scgictl(dir, manager, {"logs", "app:0", "-n", "2"});
  CHECK(last_two.out.find("before-3") != std::string::npos);
  CHECK(last_two.out.find("after-1") != std::string::npos);
  CHECK(last_two.out.find("before-2") == std::string::npos);
}

TEST_CASE("a line a worker is in the middle of at an upgrade comes out whole",
          "[manager][upgrade]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  Prompt prompt(dir.file("prompt"));
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = prompted_worker_command(dir.file("prompt")),
                          .pool_keys = "workers = 1",
                          .manager_keys = "log_dir = \"" + dir.file("logs") + "\""},
                         1);
  // The first half, with a byte that is not UTF-8, well before the switch: the
  // previous program has read it (its check of the new one alone takes longer).
  prompt.say("abc\\0377");
  const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
  INFO(upgrade.out << upgrade.err << manager.process().log());
  REQUIRE(upgrade.exit_code == 0);
  prompt.say("def\\n");
  const std::string path = dir.file("logs/app.log");
  REQUIRE(eventually([&] { return file_text(path).find("def") != std::string::npos; }));
  const std::string whole =
      "| abc\xff"
      "def\n";
  CHECK(occurrences(file_text(path), "abc") == 1);
  CHECK(occurrences(file_text(path), whole) == 1);
  // scgictl's reply is JSON: the byte that is not UTF-8 shows as U+FFFD there.
  const CtlRun logs = scgictl(dir, manager, {"logs", "app"});
  INFO(logs.out << logs.err);
  CHECK(occurrences(logs.out, "abc") == 1);
  const auto at = logs.out.find("| abc");
  REQUIRE(at != std::string::npos);
  CHECK(logs.out.substr(at, logs.out.find('\n', at) - at).ends_with("def"));
  CHECK(manager.process().log().find("upgrade failed") == std::string::npos);
}

TEST_CASE("output a worker writes while upgrades switch programs is all captured, in order",
          "[manager][upgrade]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // A line every 10 ms: some are written while no program reads the pipe.
  ManagerProcess manager(
      dir,
      {.listen = listen,
       .command = {"/bin/sh", "-c",
                   "(n=0; while :; do n=$((n+1)); echo tick-$n; sleep 0.01; done) & exec \"$0\"",
                   built_binary("scgi-sample-worker")},
       .pool_keys = "workers = 1",
       .manager_keys = "log_dir = \"" + dir.file("logs") + "\""},
      1);
  for (int round = 1; round <= 3; ++round) {
    const CtlRun upgrade = scgictl(dir, manager, {"upgrade"});
    INFO(upgrade.out << upgrade.err << manager.process().log());
    REQUIRE(upgrade.exit_code == 0);
  }
  const std::string path = dir.file("logs/app.log");
  std::vector<long> ticks;
  REQUIRE(eventually([&] {
    ticks.clear();
    std::istringstream lines(file_text(path));
    for (std::string line; std::getline(lines, line);)
      if (const auto at = line.find("| tick-"); at != std::string::npos)
        ticks.push_back(std::stol(line.substr(at + 7)));
    return ticks.size() > 100;
  }));
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    INFO("line " << i);
    REQUIRE(ticks[i] == static_cast<long>(i) + 1);
  }
}
