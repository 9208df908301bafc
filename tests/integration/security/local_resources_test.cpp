// Security: local resources (see docs/security.md), tried from outside against the
// real binaries: the /metrics exporter against silent connections, the daemons
// against a real `ulimit -n`, and the Unix front door's mode and group.
#include <catch2/catch.hpp>

#include <grp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "../support/harness.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// Every descriptor a test opens is closed with it.
struct Descriptors {
  std::vector<int> fds;
  ~Descriptors() { close_all(); }
  void close_all() {
    for (const int fd : fds)
      if (fd >= 0) ::close(fd);
    fds.clear();
  }
};

// One scrape of /metrics that must be answered within `timeout`.
Response scrape_within(std::uint16_t port, std::chrono::milliseconds timeout) {
  const int fd = connect_to(loopback(port));
  if (fd < 0) {
    Response failed;
    failed.error = "cannot connect";
    return failed;
  }
  Response response = send_request_on(
      fd, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout);
  ::close(fd);
  return response;
}

bool answered(const Response& response) {
  return response.closed && response.bytes.rfind("HTTP/1.1 200", 0) == 0 &&
         response.bytes.find("scgi_backend_up") != std::string::npos;
}

// /metrics answers (the collectables are registered just after it listens).
bool wait_scrapable(std::uint16_t port) {
  return eventually([&] { return answered(scrape_within(port, 3s)); });
}

// A daemon started through `sh -c 'ulimit ...; exec ...'`: a real limit, set
// before exec, as systemd's LimitNOFILE or a shell's ulimit would.
Process start_limited(const std::string& ulimit, const std::string& binary,
                      const std::string& config, const std::string& log) {
  return Process::start({"/bin/sh", "-c", ulimit + " && exec \"$0\" \"$@\"", built_binary(binary),
                         "--config", config},
                        log);
}

// "Max open files" of /proc/PID/limits: {soft, hard}.
std::pair<std::string, std::string> open_files_limit(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(std::string("Max open files").size()));
    std::string soft, hard;
    fields >> soft >> hard;
    return {soft, hard};
  }
  return {};
}

// Descriptors of `pid` numbered below `limit`: those RLIMIT_NOFILE counts
// (one inherited above it does not take a place).
std::size_t descriptors_below(pid_t pid, std::size_t limit) {
  std::error_code ec;
  std::size_t count = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    if (std::stoul(it->path().filename().string()) < limit) ++count;
  return count;
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++count;
  return count;
}

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;  // nobody's own group
constexpr gid_t kNotNogroup = 65533;

// Connects to the Unix socket at `path` as `uid` with only `gid` as its group,
// in a child process: 0 when connected, else the errno of the failure.
int connect_as(uid_t uid, gid_t gid, const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const pid_t child = ::fork();
  if (child == 0) {
    // Only async-signal-safe calls here: the test process has threads.
    if (::setgroups(1, &gid) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(200);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) ::_exit(201);
    ::_exit(::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0
                ? 0
                : errno);
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// scgi-proxy under umask 0 (as a careless init or container may start it),
// with a Unix front door; `keys` are more lines for its [[pool]].
Process start_unix_front_door(const TempDir& dir, const Address& listen, const Address& backend,
                              const std::string& keys) {
  dir.write("proxy.toml", "[metrics]\nlisten = \"\"\n[[pool]]\nname = \"app\"\nlisten = \"" +
                              listen.to_string() + "\"\nbackends = [\"" + backend.to_string() +
                              "\"]\n" + keys);
  return start_limited("umask 0", "scgi-proxy", dir.file("proxy.toml"), dir.file("proxy.log"));
}

mode_t permissions(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0 ? (info.st_mode & 07777) : 07777;
}

}  // namespace

TEST_CASE("a silent /metrics connection and a half-sent request do not hold up scrapes",
          "[security]") {
  TempDir dir;
  SampleWorker worker(dir, "w1");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics_port = free_port();
  ProxyProcess proxy(
      dir,
      one_pool_config(
          {.listen = listen, .backends = {worker.address()}, .metrics_port = metrics_port}),
      listen);
  REQUIRE(wait_scrapable(metrics_port));

  Descriptors attackers;
  attackers.fds.push_back(connect_to(loopback(metrics_port)));  // sends nothing
  attackers.fds.push_back(connect_to(loopback(metrics_port)));
  REQUIRE(attackers.fds[0] >= 0);
  REQUIRE(attackers.fds[1] >= 0);
  REQUIRE(::send(attackers.fds[1], "GET /metr", 9, MSG_NOSIGNAL) == 9);  // half a request line

  // Prometheus' own scrape_timeout is 10 s; these get 3 s each, repeatedly.
  for (int scrape = 0; scrape < 5; ++scrape) {
    const Response response = scrape_within(metrics_port, 3s);
    INFO("scrape " << scrape << ": " << response.error << " " << response.bytes.substr(0, 80));
    REQUIRE(answered(response));
  }
}

TEST_CASE("more silent /metrics connections than it keeps open do not delay a scrape",
          "[security]") {
  TempDir dir;
  SampleWorker worker(dir, "w1");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics_port = free_port();
  ProxyProcess proxy(
      dir,
      one_pool_config(
          {.listen = listen, .backends = {worker.address()}, .metrics_port = metrics_port}),
      listen);
  REQUIRE(wait_scrapable(metrics_port));

  // 100 silent connections, past the 64 it keeps: each new one closes the
  // oldest that has sent nothing, and a scrape (its request sent at once) is
  // answered at once (it used to wait 3 s for each 4 silent ones).
  Descriptors attackers;
  for (int i = 0; i < 100; ++i)
    attackers.fds.push_back(connect_to(loopback(metrics_port)));
  const Response response = scrape_within(metrics_port, 2s);
  INFO(response.error << " " << response.bytes.substr(0, 80));
  CHECK(answered(response));
  // The oldest silent one was closed by the server.
  char byte = 0;
  CHECK(::recv(attackers.fds[0], &byte, 1, 0) == 0);
}

TEST_CASE("a daemon with /metrics on stops promptly, even with a silent scraper connected",
          "[security]") {
  TempDir dir;
  SampleWorker worker(dir, "w1");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics_port = free_port();
  ProxyProcess proxy(
      dir,
      one_pool_config(
          {.listen = listen, .backends = {worker.address()}, .metrics_port = metrics_port}),
      listen);
  REQUIRE(wait_scrapable(metrics_port));
  // Its signal handlers are in place once it says it runs.
  REQUIRE(eventually([&] { return proxy.process().log().find("running") != std::string::npos; }));
  Descriptors silent;
  silent.fds.push_back(connect_to(loopback(metrics_port)));

  // The daemon is gone at once, the silent connection closed with it
  // (typically within 20 ms; 1 s leaves room for a loaded machine).
  proxy.process().signal(SIGTERM);
  const auto status = proxy.process().wait(1s);
  INFO(proxy.process().log());
  REQUIRE(status.has_value());
  CHECK(exited_with(*status, 0));
}

TEST_CASE(
    "both daemons raise their soft descriptor limit to the hard one, and workers get the "
    "limit the manager was started with",
    "[security]") {
  TempDir dir;
  SECTION("scgi-proxy") {
    SampleWorker worker(dir, "w1");
    const Address listen = loopback(free_port());
    dir.write("proxy.toml", one_pool_config({.listen = listen, .backends = {worker.address()}}));
    Process proxy =
        start_limited("ulimit -Sn 64", "scgi-proxy", dir.file("proxy.toml"), dir.file("proxy.log"));
    REQUIRE(wait_until_accepting(listen));
    const auto [soft, hard] = open_files_limit(proxy.pid());
    INFO(proxy.log());
    CHECK(soft != "64");
    CHECK(soft == hard);
    CHECK(proxy.log().find("descriptor limit (RLIMIT_NOFILE): soft " + hard +
                           " (started with 64), hard " + hard) != std::string::npos);
  }
  SECTION("scgi-manager and its workers") {
    const Address listen = loopback(free_port());
    const std::string control = dir.file("scgi.sock");
    dir.write("scgi.toml", managed_pool_config({.listen = listen,
                                                .command = sample_worker_command(),
                                                .pool_keys = "workers = 1",
                                                .metrics_port = free_port()},
                                               control));
    Process manager = start_limited("ulimit -Sn 64", "scgi-manager", dir.file("scgi.toml"),
                                    dir.file("manager.log"));
    REQUIRE(wait_until_accepting(listen));
    // Served: the worker has exec'd (a child caught between fork and exec
    // still has the manager's limit).
    REQUIRE(send_request(listen, get_request("/"), 10s).status() == 200);
    const std::set<pid_t> workers = child_pids(manager.pid());
    REQUIRE(workers.size() == 1);
    const auto [soft, hard] = open_files_limit(manager.pid());
    INFO(manager.log());
    CHECK(soft != "64");
    CHECK(soft == hard);
    const auto [worker_soft, worker_hard] = open_files_limit(*workers.begin());
    CHECK(worker_soft == "64");
    CHECK(worker_hard == hard);
  }
}

TEST_CASE(
    "out of descriptors, the proxy blames no backend, pauses accepting with one log line "
    "and recovers by itself",
    "[security]") {
  TempDir dir;
  SampleWorker worker(dir, "w1");
  const Address listen = loopback(free_port());
  const std::uint16_t metrics_port = free_port();
  // client_timeout long enough that the silent connections are ours to close.
  dir.write("proxy.toml", one_pool_config({.listen = listen,
                                           .backends = {worker.address()},
                                           .pool_keys = "client_timeout = \"2m\"",
                                           .metrics_port = metrics_port,
                                           .proxy_keys = "threads = 2"}));
  constexpr std::size_t kLimit = 64;
  Process proxy = start_limited("ulimit -n " + std::to_string(kLimit), "scgi-proxy",
                                dir.file("proxy.toml"), dir.file("proxy.log"));
  REQUIRE(wait_until_accepting(listen));
  REQUIRE(wait_scrapable(metrics_port));

  // Silent clients, one at a time, until the proxy holds every descriptor it may.
  Descriptors silent;
  for (std::size_t i = 0; i < kLimit && descriptors_below(proxy.pid(), kLimit) < kLimit; ++i) {
    const std::size_t before = descriptors_below(proxy.pid(), kLimit);
    silent.fds.push_back(connect_to(listen));
    REQUIRE(silent.fds.back() >= 0);
    eventually([&] { return descriptors_below(proxy.pid(), kLimit) > before; }, 2s);
  }
  REQUIRE(descriptors_below(proxy.pid(), kLimit) == kLimit);
  // One more waits in the backlog: accept fails, and the proxy says so (once).
  silent.fds.push_back(connect_to(listen));

  // Requests behind it in the backlog. Two descriptors freed: the proxy
  // accepts the silent one and a request, whose connect to the backend finds
  // no descriptor: 503 with Retry-After, never 502. Its descriptor freed, the
  // next request comes in, and fares the same.
  std::vector<int> requests;
  for (int i = 0; i < 3; ++i) {
    requests.push_back(connect_to(listen));
    const std::string request = get_request("/short");
    REQUIRE(::send(requests.back(), request.data(), request.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(request.size()));
  }
  for (int i = 0; i < 2; ++i) {
    ::close(silent.fds[i]);
    silent.fds[i] = -1;
  }
  int unavailable = 0;
  for (const int fd : requests) {
    const Response response = read_response(fd, 10s);
    ::close(fd);
    INFO(response.bytes.substr(0, 120));
    CHECK(response.status() == 503);
    if (response.status() == 503) {
      ++unavailable;
      CHECK(response.header("Retry-After") != "");
    }
  }
  CHECK(unavailable == 3);

  // Every silent client leaves: the proxy serves again by itself, and its
  // only backend was never marked down.
  silent.close_all();
  REQUIRE(eventually(
      [&] { return send_request(listen, get_request("/after"), 3s).status() == 200; }, 15s));
  const Response scrape = scrape_within(metrics_port, 5s);
  REQUIRE(answered(scrape));
  CHECK(metric_value(scrape.bytes, "scgi_backend_up{backend=\"" + worker.address().to_string() +
                                       "\",pool=\"app\"}") == 1);
  const std::string log = proxy.log();
  INFO(log);
  CHECK(log.find("marked down") == std::string::npos);
  CHECK(occurrences(log, "new connections wait in the backlog") == 1);
  CHECK(occurrences(log, "not the backend's fault") == 1);
  CHECK(occurrences(log, "descriptors free again") == 1);
  proxy.stop();
}

TEST_CASE(
    "a Unix front door with listen_mode 0660 and listen_group lets that group in and keeps "
    "every other user out",
    "[security]") {
  TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);  // others may reach the socket file
  SampleWorker worker(dir, "w1");
  const std::string path = dir.file("app.sock");
  const Address listen{Address::Kind::unix_socket, {}, 0, path};
  Process proxy = start_unix_front_door(dir, listen, worker.address(),
                                        "listen_mode = \"0660\"\nlisten_group = \"nogroup\"\n");
  REQUIRE(wait_until_accepting(listen));
  INFO(proxy.log());

  struct stat info {};
  REQUIRE(::lstat(path.c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0660);
  CHECK(info.st_gid == kNogroup);
  CHECK(connect_as(kNobody, kNogroup, path) == 0);          // nginx's user, in the group
  CHECK(connect_as(kNobody, kNotNogroup, path) == EACCES);  // any other local user
  CHECK(send_request(listen, get_request("/door")).status() == 200);

  // A reload that cannot be applied (the second pool's port is taken) changes
  // nothing of the socket either.
  SampleWorker busy(dir, "busy");
  dir.write("proxy.toml", "[metrics]\nlisten = \"\"\n[[pool]]\nname = \"app\"\nlisten = \"" +
                              listen.to_string() + "\"\nbackends = [\"" +
                              worker.address().to_string() + "\"]\nlisten_mode = \"0600\"\n" +
                              "[[pool]]\nname = \"other\"\nlisten = \"" +
                              busy.address().to_string() + "\"\nbackends = [\"" +
                              worker.address().to_string() + "\"]\n");
  REQUIRE(eventually([&] { return proxy.log().find("running") != std::string::npos; }));
  proxy.signal(SIGHUP);
  REQUIRE(eventually([&] { return proxy.log().find("cannot apply") != std::string::npos; }));
  CHECK(permissions(path) == 0660);
  CHECK(connect_as(kNobody, kNogroup, path) == 0);

  // A reload may change the group and mode of the running socket in place.
  dir.write("proxy.toml", "[metrics]\nlisten = \"\"\n[[pool]]\nname = \"app\"\nlisten = \"" +
                              listen.to_string() + "\"\nbackends = [\"" +
                              worker.address().to_string() + "\"]\nlisten_mode = \"0600\"\n");
  REQUIRE(eventually([&] { return proxy.log().find("running") != std::string::npos; }));
  proxy.signal(SIGHUP);
  CHECK(eventually([&] { return permissions(path) == 0600; }));
  CHECK(connect_as(kNobody, kNogroup, path) == EACCES);
  proxy.stop();
}

TEST_CASE("a Unix front door is never world-writable by default, whatever the umask",
          "[security]") {
  TempDir dir;
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  SampleWorker worker(dir, "w1");
  const std::string path = dir.file("app.sock");
  const Address listen{Address::Kind::unix_socket, {}, 0, path};
  Process proxy = start_unix_front_door(dir, listen, worker.address(), "");
  REQUIRE(wait_until_accepting(listen));
  INFO(proxy.log());
  CHECK(permissions(path) == 0660);
  CHECK(connect_as(kNobody, kNogroup, path) == EACCES);
  proxy.stop();
}
