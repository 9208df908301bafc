// slow_request_threshold against a real scgi-manager: the slow log entry with
// what the worker was doing (from /proc), the signal and the output it
// prompted (a Python traceback), the metric, and scgictl slowlog.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>
#include <vector>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

double slow_requests(const ManagerProcess& manager) {
  return metric_value(manager.scrape(), R"(scgi_slow_requests_total{pool="app"})");
}

// The pool's slow log entries, as scgictl --json slowlog gives them.
nlohmann::json slowlog_entries(const TempDir& dir, const ManagerProcess& manager) {
  const CtlRun run = scgictl(dir, manager, {"--json", "slowlog", "app"});
  INFO(run.out << run.err);
  REQUIRE(run.exit_code == 0);
  return nlohmann::json::parse(run.out.substr(run.out.find('{'))).at("entries");
}

}  // namespace

TEST_CASE("a request past slow_request_threshold is in the slow log with its worker's state",
          "[manager][slowlog]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 1\nslow_request_threshold = \"300ms\""},
                         1);
  const pid_t worker = *manager.worker_pids().begin();
  CHECK(slow_requests(manager) == 0);
  // Fast requests are not slow.
  for (int i = 0; i < 3; ++i)
    REQUIRE(send_request(listen, get_request("/fast")).status() == 200);

  auto slow = std::async(std::launch::async, [&] {
    return send_request(listen, get_request("/slow?sleep_ms=1500"), 20s);
  });
  // Recorded while it still runs.
  REQUIRE(eventually([&] { return slow_requests(manager) == 1; }, 5s));
  nlohmann::json entries = slowlog_entries(dir, manager);
  REQUIRE(entries.size() == 1);
  const nlohmann::json running = entries[0];
  INFO(running.dump(2));
  CHECK(running.at("uri") == "/slow?sleep_ms=1500");
  CHECK(running.at("method") == "GET");
  CHECK(running.at("pid") == worker);
  CHECK(running.at("worker") == 0);
  CHECK(running.at("running_seconds").get<double>() >= 0.3);
  CHECK(running.at("status").is_null());  // not over yet
  // The sample worker sleeps in clock_nanosleep: asleep, in that call.
  CHECK(running.at("state").get<std::string>().starts_with("S"));
  CHECK(running.at("syscall").get<std::string>().find("nanosleep") != std::string::npos);
  CHECK(running.at("signal") == "");

  REQUIRE(slow.get().status() == 200);
  REQUIRE(eventually([&] { return !slowlog_entries(dir, manager)[0].at("status").is_null(); }));
  entries = slowlog_entries(dir, manager);
  CHECK(entries[0].at("status") == 200);
  CHECK(entries[0].at("total_running_seconds").get<double>() >= 1.4);
  CHECK(slow_requests(manager) == 1);

  const CtlRun text = scgictl(dir, manager, {"slowlog"});
  INFO(text.out << text.err);
  CHECK(text.exit_code == 0);
  CHECK(text.out.find(R"("GET" "/slow?sleep_ms=1500")") !=
        std::string::npos);  // quoted: a client wrote them
  CHECK(text.out.find("ended: status 200") != std::string::npos);
  CHECK(text.out.find("nanosleep") != std::string::npos);
  const CtlRun unknown = scgictl(dir, manager, {"slowlog", "nope"});
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err.find("no pool 'nope'") != std::string::npos);
}

TEST_CASE("slow_request_signal makes a Python worker's traceback land in the slow log",
          "[manager][slowlog][python]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  const std::string script = std::string(SCGI_SOURCE_DIR) + "/deploy/examples/workers/hello.py";
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = {"python3", script},
                          .pool_keys = "workers = 1\nslow_request_threshold = \"300ms\"\n"
                                       "slow_request_signal = \"SIGUSR1\""},
                         1);
  auto slow = std::async(std::launch::async, [&] {
    return send_request(listen, get_request("/report?sleep_ms=1200"), 20s);
  });
  // The signal does not end the request: faulthandler prints and returns.
  REQUIRE(slow.get().status() == 200);
  REQUIRE(eventually([&] {
    const auto entries = slowlog_entries(dir, manager);
    return entries.size() == 1 && !entries[0].at("status").is_null();
  }));
  const nlohmann::json entry = slowlog_entries(dir, manager)[0];
  INFO(entry.dump(2));
  CHECK(entry.at("signal") == "SIGUSR1");
  CHECK(entry.at("status") == 200);
  // faulthandler's dump: the thread, and the line of hello.py that sleeps.
  const std::string output = entry.at("output").dump();
  CHECK(output.find("most recent call first") != std::string::npos);
  CHECK(output.find("hello.py") != std::string::npos);
  // In the pool's log the same lines carry the request's tag.
  const CtlRun logs = scgictl(dir, manager, {"logs", "app", "-n", "50"});
  CHECK(logs.out.find("[slow request " + std::to_string(entry.at("id").get<std::uint64_t>()) +
                      "] ") != std::string::npos);
}

TEST_CASE("a client that reads its response slowly does not make the request slow",
          "[manager][slowlog][security]") {
  TempDir dir;
  const Address listen = loopback(free_port());
  // No room to hold the response for the client: the worker waits on it.
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 1\nslow_request_threshold = \"300ms\"\n"
                                       "slow_request_signal = \"SIGUSR1\"\n"
                                       "response_buffer = \"16KiB\"\nresponse_spill = \"0\""},
                         1);
  const int client = connect_to(listen);
  REQUIRE(client >= 0);
  // Larger than every socket buffer on the way (the kernel grows them to a few MB).
  const std::string request = get_request("/big?size=30000000");
  REQUIRE(::send(client, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  // 30 MB at about 10 MB/s: three seconds in which the worker mostly waits.
  std::size_t received = 0;
  std::vector<char> buffer(1024 * 1024);
  const auto started = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - started < 20s) {
    const ssize_t n = ::recv(client, buffer.data(), buffer.size(), 0);
    if (n <= 0) break;
    received += static_cast<std::size_t>(n);
    std::this_thread::sleep_for(100ms);
  }
  ::close(client);
  CHECK(received > 30'000'000);
  CHECK(std::chrono::steady_clock::now() - started > 1s);
  // Neither an entry nor a signal: the sample worker would have died of SIGUSR1.
  CHECK(slow_requests(manager) == 0);
  CHECK(slowlog_entries(dir, manager).empty());
  CHECK(manager.restarts("signal") == 0);
}
