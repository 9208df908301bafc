// Third-party SCGI servers as pools of scgi-manager, behind Debian's nginx
// (deploy/examples/nginx-scgi.conf), curl and plain HTTP as the clients:
// uWSGI with its python3 (WSGI), psgi (Perl) and rack (Ruby) plugins, and a
// server on libscgi-perl. Each runs the small application of
// tests/integration/apps/ (/echo, /env, /sleep?ms=N) as 2 workers in `port`
// mode; docs/apps.md has the same command lines and what each server taught
// us.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "../support/harness.hpp"
#include "front_end_servers.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

std::string app_file(const std::string& name) {
  return std::string(SCGI_SOURCE_DIR) + "/tests/integration/apps/" + name;
}

// uWSGI as one single-process worker per slot: no --master, so the process
// scgi-manager starts is the one that serves (its PID is the worker's, and a
// slow log signal reaches the application). SIGTERM ends such a worker at
// once (--die-on-term says so for a --master too); --buffer-size admits the
// header blocks nginx sends (uWSGI's 4096 resets bigger ones: a 502);
// --need-app exits when the application does not load, instead of answering
// every request with 500.
std::vector<std::string> uwsgi_command(std::vector<std::string> plugin_and_app) {
  std::vector<std::string> argv{"uwsgi",         "--scgi-socket",    "127.0.0.1:{port}",
                                "--die-on-term", "--buffer-size",    "65535",
                                "--need-app",    "--disable-logging"};
  argv.insert(argv.begin() + 1, plugin_and_app.begin(), plugin_and_app.end());
  return argv;
}

struct RealServer {
  std::string name;
  std::vector<std::string> command;  // {port} is the worker's port
  // What the application sees of `X-Dup: one` + `X-Dup: two`: nginx 1.22
  // sends two HTTP_X_DUP pairs (SCGI-PEERS.md 1.3 #1) and scgi-manager passes
  // both on; each server makes its own environment of them.
  std::string repeated_header_line;
  std::string repeated_header_warning;  // what the server logs about them, "" for nothing
  // slow_request_signal for it, and what its output then shows ("" for neither).
  std::string slow_signal{};
  std::string slow_output{};
};

// 8 MiB of random bytes (every byte value, NULs and CRLFs included) in `dir`.
std::string write_random_upload(const TempDir& dir, const std::string& name, std::size_t size) {
  std::mt19937_64 random(std::random_device{}());
  std::string bytes(size, '\0');
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t word = random();
    std::memcpy(bytes.data() + i, &word, std::min<std::size_t>(8, size - i));
  }
  dir.write(name, bytes);
  return bytes;
}

// sha256sum's digest of a file, as the applications write it (lower-case hex).
std::string sha256_of(const TempDir& dir, const std::string& name) {
  Process sum = Process::start({"sha256sum", dir.file(name)}, dir.file(name + ".sha256"));
  if (!sum.wait(30s)) return "sha256sum did not finish";
  return sum.log().substr(0, 64);
}

// Plain HTTP GETs through nginx from `threads` clients until `stop` is set,
// at most `max_requests` each and for at most `max_time`.
struct LoadResult {
  int requests = 0;
  int failures = 0;
  std::string first_failure;  // the answer's first 300 bytes ("" for no answer)
};

LoadResult run_http_load(std::uint16_t port, const std::string& path, const std::atomic<bool>& stop,
                         int threads, int max_requests, std::chrono::seconds max_time) {
  const auto deadline = std::chrono::steady_clock::now() + max_time;
  std::mutex mutex;
  LoadResult total;
  std::vector<std::thread> clients;
  for (int t = 0; t < threads; ++t)
    clients.emplace_back([&] {
      LoadResult mine;
      for (int i = 0;
           i < max_requests && !stop.load() && std::chrono::steady_clock::now() < deadline; ++i) {
        const std::string answer = http_get(port, path);
        ++mine.requests;
        if (!answer.starts_with("HTTP/1.1 200 ")) {
          ++mine.failures;
          if (mine.first_failure.empty()) mine.first_failure = "[" + answer.substr(0, 300) + "]";
        }
      }
      const std::lock_guard lock(mutex);
      total.requests += mine.requests;
      total.failures += mine.failures;
      if (total.first_failure.empty()) total.first_failure = mine.first_failure;
    });
  for (std::thread& client : clients)
    client.join();
  return total;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Every check on one manager (2 workers) and one nginx: starting them costs
// more than the checks.
void serves_behind_nginx(const RealServer& server) {
  TempDir dir;
  const Address pool = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = pool,
                          .command = server.command,
                          .pool_keys = "workers = 2\nsocket = \"port\"\nstop_timeout = \"3s\"\n"
                                       "create_traceparent = true\n"
                                       "slow_request_threshold = \"500ms\"\n"
                                       "slow_request_signal = \"" +
                                       server.slow_signal + "\"\n"},
                         2);
  const std::uint16_t http_port = free_port();
  FrontEnd front(dir, FrontEndKind::nginx, {.http_port = http_port, .pool = pool});
  const auto logs = [&] {
    return server.name + ": nginx error log:\n" + front.error_log() + "\nmanager log:\n" +
           manager.process().log();
  };

  {
    INFO("GET /env through nginx: the application sees the method, the URI and the query");
    const HttpReply reply = curl(dir, {}, front.url("/env?a=1&b=two"));
    INFO(logs() << "\napplication saw:\n" << reply.body);
    CHECK(reply.status == 200);
    CHECK(contains(reply.body, "REQUEST_METHOD=GET\n"));
    CHECK(contains(reply.body, "REQUEST_URI=/env?a=1&b=two\n"));
    CHECK(contains(reply.body, "QUERY_STRING=a=1&b=two\n"));
  }
  {
    INFO("the variables scgi-manager adds: queue time, and the trace context passed or created");
    const std::string traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const HttpReply passed = curl(dir, {"-H", "traceparent: " + traceparent}, front.url("/env"));
    const HttpReply created = curl(dir, {}, front.url("/env"));
    INFO(logs() << "\napplication saw:\n" << passed.body << "\nand:\n" << created.body);
    CHECK(passed.status == 200);
    CHECK(contains(passed.body, "HTTP_TRACEPARENT=" + traceparent + "\n"));
    CHECK(contains(passed.body, "HTTP_X_REQUEST_START=t="));
    CHECK(contains(passed.body, "SCGI_QUEUE_WAIT_US="));
    CHECK(contains(created.body, "HTTP_TRACEPARENT=00-"));
    CHECK_FALSE(contains(created.body, traceparent));
  }
  {
    INFO("a slow request: in the slow log, with what the worker wrote after the signal");
    const HttpReply reply = curl(dir, {}, front.url("/sleep?ms=1500"));
    nlohmann::json entry;
    const bool ended = eventually([&] {
      const CtlRun run = scgictl(dir, manager, {"--json", "slowlog", "app"});
      if (run.exit_code != 0) return false;
      const auto entries = nlohmann::json::parse(run.out.substr(run.out.find('{'))).at("entries");
      if (entries.empty() || entries.back().at("status").is_null()) return false;
      entry = entries.back();
      return server.slow_output.empty() || contains(entry.at("output").dump(), server.slow_output);
    });
    INFO(logs() << "\nslow log entry:\n" << entry.dump(2));
    CHECK(reply.status == 200);
    CHECK(ended);
    CHECK(entry.value("uri", "") == "/sleep?ms=1500");
    CHECK(entry.value("signal", "") == server.slow_signal);
    CHECK(entry.value("state", "").starts_with("S"));
  }
  {
    INFO("POST /echo of 8 MiB of random bytes: the answer is the same bytes");
    const std::string upload = write_random_upload(dir, "upload.bin", 8u << 20);
    const HttpReply reply = curl(dir,
                                 {"--data-binary", "@" + dir.file("upload.bin"), "-H",
                                  "Content-Type: application/octet-stream"},
                                 front.url("/echo"));
    INFO(
        logs() << "\nanswer: " << reply.body.size() << " bytes, first differing at "
               << (std::mismatch(upload.begin(), upload.end(), reply.body.begin(), reply.body.end())
                       .first -
                   upload.begin()));
    CHECK(reply.status == 200);
    CHECK(reply.header("content-type") == "application/octet-stream");
    CHECK(reply.body.size() == upload.size());
    const bool same_bytes = reply.body == upload;  // not expanded: 8 MiB of binary
    CHECK(same_bytes);
    // The digest the application computed of what it received.
    CHECK(reply.header("x-body-sha256") == sha256_of(dir, "upload.bin"));
  }
  {
    INFO("two X-Dup request headers: what the application sees");
    const HttpReply reply = curl(dir, {"-H", "X-Dup: one", "-H", "X-Dup: two"}, front.url("/env"));
    INFO(logs() << "\napplication saw:\n" << reply.body);
    CHECK(reply.status == 200);
    CHECK(contains(reply.body, server.repeated_header_line + "\n"));
    if (!server.repeated_header_warning.empty())
      CHECK(eventually(
          [&] { return contains(manager.process().log(), server.repeated_header_warning); }, 5s));
  }
  {
    INFO("scgictl restart app under load through nginx: no request fails, every worker replaced");
    const std::set<pid_t> before = manager.worker_pids();
    REQUIRE(before.size() == 2);
    std::atomic<bool> stop{false};
    LoadResult load;
    std::thread clients(
        [&] { load = run_http_load(http_port, "/sleep?ms=2", stop, 4, 5000, 40s); });
    // Some load first, so that the restart meets requests in flight.
    const bool loaded = eventually([&] { return manager.served() >= 40; }, 10s);
    const CtlRun restart = scgictl(dir, manager, {"restart", "app"});
    const double served_by_restart_end = manager.served();
    // And some on the new workers before the clients stop.
    eventually([&] { return manager.served() >= served_by_restart_end + 40; }, 10s);
    stop = true;
    clients.join();
    const std::set<pid_t> after = manager.worker_pids();
    INFO(logs() << "\nscgictl restart app: " << restart.out << restart.err << "\n"
                << load.requests << " requests, " << load.failures
                << " failed, the first: " << load.first_failure);
    CHECK(loaded);
    CHECK(restart.exit_code == 0);
    CHECK(load.failures == 0);
    CHECK(load.requests >= 80);
    CHECK(after.size() == 2);
    for (const pid_t pid : before)
      CHECK(after.count(pid) == 0);
  }
}

}  // namespace

TEST_CASE("uWSGI python3 plugin (WSGI) as a pool behind nginx", "[apps][uwsgi]") {
  // uWSGI's python plugin builds the environ dict pair by pair: the last wins.
  serves_behind_nginx(
      {"uwsgi python3",
       uwsgi_command({"--plugin", "python3", "--wsgi-file", app_file("wsgi_app.py")}),
       "HTTP_X_DUP=two", "", "SIGUSR1",
       // faulthandler's dump names the line that sleeps
       "most recent call first"});
}

TEST_CASE("uWSGI psgi plugin (Perl) as a pool behind nginx", "[apps][uwsgi]") {
  // uWSGI's psgi plugin joins a repeated name's values with ", ", as HTTP does.
  serves_behind_nginx({"uwsgi psgi",
                       uwsgi_command({"--plugin", "psgi", "--psgi", app_file("psgi_app.psgi")}),
                       "HTTP_X_DUP=one, two", ""});
}

TEST_CASE("uWSGI rack plugin (Ruby) as a pool behind nginx", "[apps][uwsgi]") {
  // uWSGI's rack plugin builds the env hash pair by pair: the last wins.
  serves_behind_nginx({"uwsgi rack",
                       uwsgi_command({"--plugin", "rack_ruby31", "--rack", app_file("config.ru")}),
                       "HTTP_X_DUP=two", ""});
}

TEST_CASE("libscgi-perl server as a pool behind nginx", "[apps][perl]") {
  // SCGI.pm keeps the last value and warns on stderr (the pool's log).
  serves_behind_nginx({"libscgi-perl",
                       {"perl", app_file("scgi_perl_app.pl"), "--port", "{port}"},
                       "HTTP_X_DUP=two",
                       "repeated HTTP_X_DUP header in env"});
}
