// The control server on a real Unix socket in a temp folder, with a scripted
// handler: framing, malformed input, permissions (file mode and peer
// credentials), the socket file's life, and streaming logs.
#include <catch2/catch.hpp>

#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "control_client.hpp"
#include "scgi/control_protocol.hpp"
#include "scripted_control.hpp"

using namespace scgi;
using namespace scgi::test;
using namespace std::chrono_literals;
using ctl::ControlClient;
using nlohmann::json;

namespace {

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;

ControlClient connect_to(const std::string& path) {
  auto client = ControlClient::connect(path, 5s);
  INFO(path);
  REQUIRE(client);
  return std::move(client).value();
}

// The next reply line, parsed, past the progress lines of a restart.
json read_reply(ControlClient& client) {
  for (;;) {
    auto read = client.read_line(5s);
    INFO(read.error);
    REQUIRE(read.status == ControlClient::ReadStatus::line);
    json line = json::parse(read.line);
    if (!line.contains("progress")) return line;
  }
}

// Sends `line` and returns the reply, parsed.
json ask(ControlClient& client, const std::string& line) {
  INFO(line);
  REQUIRE(client.send(line, 5s));
  return read_reply(client);
}

json ask(const std::string& path, const std::string& line) {
  auto client = connect_to(path);
  return ask(client, line);
}

// The server closes the connection, with nothing more than a restart's progress lines before.
bool closed_by_server(ControlClient& client) {
  for (;;) {
    const auto read = client.read_line(5s);
    if (read.status != ControlClient::ReadStatus::line ||
        !json::parse(read.line).contains("progress"))
      return read.status == ControlClient::ReadStatus::closed;
  }
}

// The server said the connection was idle, then closed it.
bool closed_as_idle(ControlClient& client) {
  const auto read = client.read_line(5s);
  if (read.status != ControlClient::ReadStatus::line) return false;
  const json reply = json::parse(read.line);
  return reply["ok"] == false &&
         reply["error"].get<std::string>().starts_with("no complete request line within") &&
         closed_by_server(client);
}

mode_t file_mode(const std::string& path) {
  struct stat info {};
  REQUIRE(::lstat(path.c_str(), &info) == 0);
  return info.st_mode & 07777;
}

bool exists(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0;
}

// A socket file that nobody accepts on: bound, then its socket closed.
void leave_stale_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  ::close(fd);
}

// What a client running as another user saw: connect()'s errno (0 when it
// connected) and the bytes the server sent back to a status request.
struct ForeignPeer {
  int connect_errno = -1;
  std::string received;
};

// Forks a child that drops to uid 65534 (primary group `gid`, supplementary
// `groups`), connects to `path`, asks for status and reports through a pipe.
// After fork the child makes only system calls (the test process has threads).
ForeignPeer connect_as_nobody(const std::string& path, gid_t gid = kNogroup,
                              std::vector<gid_t> groups = {}) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  const char request[] = "{\"command\":\"status\"}\n";
  int report[2];
  REQUIRE(::pipe(report) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(report[0]);
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 ||
        ::setuid(kNobody) != 0)
      ::_exit(10);
    int result = 0;
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) result = errno;
    if (::write(report[1], &result, sizeof result) != sizeof result) ::_exit(11);
    if (result == 0) {
      (void)::send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
      char buffer[4096];
      pollfd wait{fd, POLLIN, 0};
      while (::poll(&wait, 1, 5000) > 0) {
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got <= 0) break;
        if (::write(report[1], buffer, static_cast<std::size_t>(got)) != got) ::_exit(12);
        if (std::memchr(buffer, '\n', static_cast<std::size_t>(got)) != nullptr) break;
      }
    }
    ::_exit(0);
  }
  ::close(report[1]);
  ForeignPeer peer;
  std::string bytes;
  char buffer[4096];
  for (ssize_t got; (got = ::read(report[0], buffer, sizeof buffer)) > 0;)
    bytes.append(buffer, static_cast<std::size_t>(got));
  ::close(report[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  INFO("child exit status " << status);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(bytes.size() >= sizeof(int));
  std::memcpy(&peer.connect_errno, bytes.data(), sizeof(int));
  peer.received = bytes.substr(sizeof(int));
  return peer;
}

// Connections held by a child running as `uid` (primary group `gid`): each
// asks for status once and records how it was answered, 'o' ok, 'r' refused
// (an error reply) or 'x' (nothing, or the connection failed); all stay open
// until this object goes. After fork the child makes only system calls.
class ForeignConnections {
 public:
  ForeignConnections(const std::string& path, uid_t uid, gid_t gid, int count) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path.c_str());
    int report[2];
    int release[2];
    REQUIRE(::pipe(report) == 0);
    REQUIRE(::pipe(release) == 0);
    child_ = ::fork();
    REQUIRE(child_ >= 0);
    if (child_ == 0) {
      ::close(report[0]);
      ::close(release[1]);
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(10);
      const char request[] = "{\"command\":\"status\"}\n";
      for (int i = 0; i < count; ++i) {
        char outcome = 'x';
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
          // A refusal may come, and the server close, before the request is out.
          (void)::send(fd, request, sizeof request - 1, MSG_NOSIGNAL);
          char buffer[4096];
          std::size_t have = 0;
          pollfd wait{fd, POLLIN, 0};
          while (have<sizeof buffer&& ::poll(&wait, 1, 5000)> 0) {
            const ssize_t got = ::read(fd, buffer + have, sizeof buffer - have);
            if (got <= 0) break;
            have += static_cast<std::size_t>(got);
            if (std::memchr(buffer, '\n', have) != nullptr) break;
          }
          const std::string_view reply(buffer, have);
          if (reply.find("\"ok\":true") != std::string_view::npos) outcome = 'o';
          if (reply.find("\"ok\":false") != std::string_view::npos) outcome = 'r';
        }
        if (::write(report[1], &outcome, 1) != 1) ::_exit(11);
      }
      ::close(report[1]);
      char ignored;
      (void)::read(release[0], &ignored, 1);  // until the parent closes its end
      ::_exit(0);
    }
    ::close(report[1]);
    ::close(release[0]);
    release_ = release[1];
    char buffer[256];
    for (ssize_t got; (got = ::read(report[0], buffer, sizeof buffer)) > 0;)
      outcomes_.append(buffer, static_cast<std::size_t>(got));
    ::close(report[0]);
  }
  ~ForeignConnections() {
    ::close(release_);
    int status = 0;
    ::waitpid(child_, &status, 0);
  }
  ForeignConnections(const ForeignConnections&) = delete;
  ForeignConnections& operator=(const ForeignConnections&) = delete;

  const std::string& outcomes() const { return outcomes_; }

 private:
  pid_t child_ = -1;
  int release_ = -1;
  std::string outcomes_;
};

// A group other than the test's own, to be control_group: "daemon" on Debian.
const char* const kOtherGroup = "daemon";

gid_t group_id(const char* name) {
  const group* entry = ::getgrnam(name);
  REQUIRE(entry != nullptr);
  return entry->gr_gid;
}

}  // namespace

TEST_CASE("status replies with the handler's pools and echoes the id", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  const json reply = ask(server.path(), R"({"command":"status","id":"s1"})"
                                        "\n");
  CHECK(reply["ok"] == true);
  CHECK(reply["id"] == "s1");
  CHECK(reply["pools"].get<std::vector<control::PoolStatus>>() == two_worker_pool());

  const json one = ask(server.path(), R"({"command":"status","pool":"app","id":2})"
                                      "\n");
  CHECK(one["pools"].size() == 1);
  CHECK(one["id"] == 2);
  const json none = ask(server.path(), R"({"command":"status","pool":"nope"})"
                                       "\n");
  CHECK(none["ok"] == false);
  CHECK(none["error"] == "no pool named nope");
  CHECK_FALSE(none.contains("id"));
}

TEST_CASE("a malformed line gets an error and the connection stays usable", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  auto client = connect_to(server.path());

  const json malformed = ask(client, "{\"command\": \"status\"\n");
  CHECK(malformed["ok"] == false);
  CHECK_THAT(malformed["error"].get<std::string>(), Catch::StartsWith("malformed JSON"));

  const json not_object = ask(client, "[\"status\"]\n");
  CHECK_THAT(not_object["error"].get<std::string>(), Catch::Contains("must be a JSON object"));

  const json unknown = ask(client, "{\"command\":\"explode\",\"id\":9}\n");
  CHECK(unknown["id"] == 9);
  CHECK_THAT(unknown["error"].get<std::string>(), Catch::StartsWith("unknown command \"explode\""));

  const json missing = ask(client, "{\"pool\":\"app\"}\n");
  CHECK_THAT(missing["error"].get<std::string>(), Catch::StartsWith("missing \"command\""));

  const json wrong_type =
      ask(client, "{\"command\":\"restart\",\"pool\":\"app\",\"worker\":\"1\"}\n");
  CHECK_THAT(wrong_type["error"].get<std::string>(), Catch::StartsWith("\"worker\" must be"));

  // Blank lines are skipped, CRLF is fine, and the connection still answers.
  const json status = ask(client, "\n  \r\n{\"command\":\"status\",\"id\":1}\r\n");
  CHECK(status["ok"] == true);
  CHECK(status["id"] == 1);
}

TEST_CASE("several requests in one write get their replies in order", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  auto client = connect_to(server.path());
  REQUIRE(client.send(
      "{\"command\":\"status\",\"id\":1}\nnope\n{\"command\":\"reload\",\"id\":3}\n", 5s));
  for (const json& expected : {json(1), json(nullptr), json(3)}) {
    auto read = client.read_line(5s);
    REQUIRE(read.status == ControlClient::ReadStatus::line);
    CHECK(json::parse(read.line).value("id", json()) == expected);
  }
}

TEST_CASE("a last request without its newline is answered before the close", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  auto client = connect_to(server.path());
  REQUIRE(client.send("{\"command\":\"status\",\"id\":\"last\"}", 5s));
  REQUIRE(::shutdown(client.fd(), SHUT_WR) == 0);
  auto read = client.read_line(5s);
  REQUIRE(read.status == ControlClient::ReadStatus::line);
  CHECK(json::parse(read.line)["id"] == "last");
  CHECK(closed_by_server(client));
}

TEST_CASE("an oversized line gets an error and the connection is closed", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  auto client = connect_to(server.path());
  // Just over the limit, without a newline: the server must not wait for one.
  const std::string huge(control::kMaxRequestBytes + 1, 'x');
  REQUIRE(client.send(huge, 5s));
  auto read = client.read_line(5s);
  REQUIRE(read.status == ControlClient::ReadStatus::line);
  const json reply = json::parse(read.line);
  CHECK(reply["ok"] == false);
  CHECK_THAT(reply["error"].get<std::string>(),
             Catch::StartsWith("request line longer than 65536"));
  CHECK(closed_by_server(client));

  // One byte over the limit, newline or not, is too long; exactly the limit
  // is read (and here rejected as JSON only).
  auto other = connect_to(server.path());
  const json one_over = ask(other, std::string(control::kMaxRequestBytes, ' ') + "x\n");
  CHECK_THAT(one_over["error"].get<std::string>(), Catch::StartsWith("request line longer"));
  auto third = connect_to(server.path());
  const json at_limit = ask(third, std::string(control::kMaxRequestBytes - 1, ' ') + "x\n");
  CHECK_THAT(at_limit["error"].get<std::string>(), Catch::StartsWith("malformed JSON"));
}

TEST_CASE("commands reach the handler with their arguments and its failures are errors",
          "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  auto client = connect_to(server.path());
  const std::vector<std::pair<std::string, std::string>> cases{
      {R"({"command":"start","pool":"app"})", "start app"},
      {R"({"command":"stop","pool":"app","worker":1})", "stop app:1"},
      {R"({"command":"restart","pool":"app"})", "restart app"},
      {R"({"command":"scale","pool":"app","workers":6})", "scale app 6"},
      {R"({"command":"reload"})", "reload"},
      {R"({"command":"drain","pool":"app","worker":0,"wait":true})", "drain app:0 wait"},
      {R"({"command":"undrain","pool":"app","worker":0})", "undrain app:0"},
  };
  for (const auto& [line, call] : cases) {
    const json reply = ask(client, line + "\n");
    CHECK(reply["ok"] == true);
    CHECK(reply["message"] == "done");
  }
  std::vector<std::string> expected;
  for (const auto& one_case : cases)
    expected.push_back(one_case.second);
  CHECK(server.on_loop([&] { return server.handler().calls; }) == expected);

  server.on_loop([&] { server.handler().fail_next = true; });
  const json failed = ask(client, "{\"command\":\"restart\",\"pool\":\"app\",\"id\":5}\n");
  CHECK(failed["ok"] == false);
  CHECK(failed["id"] == 5);
  CHECK(failed["error"] == "it went wrong");
}

TEST_CASE("the socket is born 0600 or 0660 owned by control_group", "[control][server]") {
  ScratchFolder folder;
  {
    RunningServer server(folder.file("owner.sock"));
    CHECK(file_mode(server.path()) == 0600);
  }
  if (::geteuid() != 0) {
    WARN("not root: cannot give the socket to another group");
    return;
  }
  RunningServer server(folder.file("group.sock"), kOtherGroup);
  CHECK(file_mode(server.path()) == 0660);
  struct stat info {};
  REQUIRE(::lstat(server.path().c_str(), &info) == 0);
  CHECK(info.st_gid == group_id(kOtherGroup));
  CHECK(ask(server.path(), "{\"command\":\"status\"}\n")["ok"] == true);
}

TEST_CASE("a connection from the server's own process is refused with the reason",
          "[control][server]") {
  // What a worker's socket path made a symlink to the control socket would
  // give: the manager connecting to itself, as root.
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"), "", {}, true);
  auto client = connect_to(folder.file("scgi.sock"));
  const json reply = read_reply(client);
  CHECK(reply["ok"] == false);
  CHECK_THAT(reply["error"].get<std::string>(),
             Catch::Contains("a connection from scgi-manager itself"));
  CHECK(closed_by_server(client));
}

TEST_CASE("an unknown control_group is a clear error and leaves nothing behind",
          "[control][server]") {
  ScratchFolder folder;
  asio::io_context context;
  ScriptedHandler handler;
  manager::ControlServer server(context, folder.file("scgi.sock"), "no-such-group-here", handler);
  std::string error;
  CHECK_FALSE(server.open(error));
  CHECK_THAT(error, Catch::Contains("control_group \"no-such-group-here\" is not a group"));
  CHECK_FALSE(exists(folder.file("scgi.sock")));
}

TEST_CASE("a peer of another uid is refused by its credentials and by the file mode at 0600",
          "[control][server]") {
  if (::geteuid() != 0) {
    WARN("not root: cannot run a client as another user");
    return;
  }
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));

  // Mode 0600: the kernel refuses the connect itself.
  const ForeignPeer by_mode = connect_as_nobody(server.path());
  CHECK(by_mode.connect_errno == EACCES);

  // Opened up to everyone: connect succeeds, and SO_PEERCRED is what refuses.
  REQUIRE(::chmod(server.path().c_str(), 0666) == 0);
  const ForeignPeer by_credentials = connect_as_nobody(server.path());
  REQUIRE(by_credentials.connect_errno == 0);
  REQUIRE_FALSE(by_credentials.received.empty());
  const json reply = json::parse(by_credentials.received);
  CHECK(reply["ok"] == false);
  CHECK_THAT(reply["error"].get<std::string>(),
             Catch::StartsWith("permission denied: uid 65534 is not root or the manager's user"));
  CHECK_FALSE(reply.contains("pools"));

  // The owner still gets in.
  CHECK(ask(server.path(), "{\"command\":\"status\"}\n")["ok"] == true);
}

TEST_CASE("members of control_group get in and others are refused naming the group",
          "[control][server]") {
  if (::geteuid() != 0) {
    WARN("not root: cannot run a client as another user");
    return;
  }
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"), kOtherGroup);
  const gid_t control_gid = group_id(kOtherGroup);

  const ForeignPeer supplementary = connect_as_nobody(server.path(), kNogroup, {control_gid});
  REQUIRE(supplementary.connect_errno == 0);
  CHECK(json::parse(supplementary.received)["ok"] == true);

  const ForeignPeer primary = connect_as_nobody(server.path(), control_gid);
  REQUIRE(primary.connect_errno == 0);
  CHECK(json::parse(primary.received)["ok"] == true);

  const ForeignPeer outsider_by_mode = connect_as_nobody(server.path());
  CHECK(outsider_by_mode.connect_errno == EACCES);

  REQUIRE(::chmod(server.path().c_str(), 0666) == 0);
  const ForeignPeer outsider = connect_as_nobody(server.path());
  REQUIRE(outsider.connect_errno == 0);
  const json reply = json::parse(outsider.received);
  CHECK(reply["ok"] == false);
  CHECK(reply["error"] ==
        "permission denied: uid 65534 is not root, the manager's user or in control_group daemon");
}

TEST_CASE("a stale socket is replaced but a live one or another file is left alone",
          "[control][server]") {
  ScratchFolder folder;
  const std::string path = folder.file("scgi.sock");
  leave_stale_socket(path);
  REQUIRE(exists(path));
  {
    RunningServer first(path);
    CHECK(ask(path, "{\"command\":\"status\"}\n")["ok"] == true);

    asio::io_context context;
    ScriptedHandler handler;
    manager::ControlServer second(context, path, "", handler);
    std::string error;
    CHECK_FALSE(second.open(error));
    CHECK_THAT(error, Catch::StartsWith("another scgi-manager is running on " + path));
    second.close();
    // The running one keeps its socket and still answers.
    CHECK(exists(path));
    CHECK(ask(path, "{\"command\":\"status\"}\n")["ok"] == true);
  }

  const std::string regular = folder.file("not-a-socket");
  std::ofstream(regular) << "keep me";
  asio::io_context context;
  ScriptedHandler handler;
  manager::ControlServer server(context, regular, "", handler);
  std::string error;
  CHECK_FALSE(server.open(error));
  CHECK_THAT(error, Catch::Contains("exists and is not a socket"));
  std::ifstream kept(regular);
  std::string content;
  std::getline(kept, content);
  CHECK(content == "keep me");
}

TEST_CASE("close() ends connections and removes the socket file but only its own",
          "[control][server]") {
  ScratchFolder folder;
  const std::string path = folder.file("scgi.sock");
  {
    RunningServer server(path);
    auto client = connect_to(path);
    CHECK(ask(client, "{\"command\":\"status\"}\n")["ok"] == true);
    server.on_loop([&] { server.server().close(); });
    CHECK_FALSE(exists(path));
    CHECK(closed_by_server(client));
    CHECK_FALSE(ControlClient::connect(path, 1s));
  }
  {
    // Another process replaced the file meanwhile: close() leaves that one.
    RunningServer server(path);
    REQUIRE(::unlink(path.c_str()) == 0);
    leave_stale_socket(path);
    server.on_loop([&] { server.server().close(); });
    CHECK(exists(path));
  }
}

TEST_CASE("the socket's folder is created 0755 when missing", "[control][server]") {
  ScratchFolder folder;
  const std::string path = folder.file("run/scgi/scgi.sock");
  const mode_t old_umask = ::umask(077);
  {
    RunningServer server(path);
    ::umask(old_umask);
    CHECK(file_mode(folder.file("run")) == 0755);
    CHECK(file_mode(folder.file("run/scgi")) == 0755);
    CHECK(file_mode(path) == 0600);
  }
  ::umask(old_umask);
}

TEST_CASE("a socket path too long for sun_path is refused up front", "[control][server]") {
  asio::io_context context;
  ScriptedHandler handler;
  manager::ControlServer server(context, "/tmp/" + std::string(120, 'x') + ".sock", "", handler);
  std::string error;
  CHECK_FALSE(server.open(error));
  CHECK_THAT(error, Catch::Contains("longer than 107 bytes"));
}

TEST_CASE("a silent client holds up nobody", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  auto silent = connect_to(server.path());
  REQUIRE(silent.send("{\"command\":", 5s));  // half a request, never finished
  auto idle = connect_to(server.path());      // connected, says nothing
  for (int i = 0; i < 20; ++i)
    CHECK(ask(server.path(), "{\"command\":\"status\"}\n")["ok"] == true);
  CHECK(server.on_loop([&] { return server.server().connection_count(); }) >= 2);
}

TEST_CASE("a slow command holds up only its own connection", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().restart_delay = 500ms; });
  auto slow = connect_to(server.path());
  REQUIRE(slow.send("{\"command\":\"restart\",\"pool\":\"app\"}\n", 5s));
  REQUIRE(eventually_on(server, [&] { return !server.handler().calls.empty(); }));
  const auto started = std::chrono::steady_clock::now();
  CHECK(ask(server.path(), "{\"command\":\"status\"}\n")["ok"] == true);
  CHECK(std::chrono::steady_clock::now() - started < 400ms);
  CHECK(read_reply(slow)["message"] == "done");
}

TEST_CASE("a restart streams its steps as they happen, then its reply", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().restart_delay = 300ms; });
  auto client = connect_to(server.path());
  REQUIRE(client.send("{\"command\":\"restart\",\"pool\":\"app\",\"id\":9}\n", 5s));
  // The first step arrives while the restart is still going (it takes 600 ms).
  const auto started = std::chrono::steady_clock::now();
  auto first = client.read_line(5s);
  REQUIRE(first.status == ControlClient::ReadStatus::line);
  CHECK(std::chrono::steady_clock::now() - started < 250ms);
  CHECK(json::parse(first.line) == json{{"progress", "app:0 replacement ready"}, {"id", 9}});
  auto second = client.read_line(5s);
  REQUIRE(second.status == ControlClient::ReadStatus::line);
  CHECK(json::parse(second.line) == json{{"progress", "app:0 old worker stopped"}, {"id", 9}});
  auto reply = client.read_line(5s);
  REQUIRE(reply.status == ControlClient::ReadStatus::line);
  CHECK(json::parse(reply.line) == json{{"ok", true}, {"id", 9}, {"message", "done"}});

  // Without an id the steps carry none; a failed restart still sends its steps first.
  server.on_loop([&] {
    server.handler().restart_delay = 0ms;
    server.handler().fail_next = true;
  });
  REQUIRE(client.send("{\"command\":\"restart\",\"pool\":\"app\",\"worker\":1}\n", 5s));
  std::vector<json> lines;
  for (int i = 0; i < 3; ++i) {
    auto read = client.read_line(5s);
    REQUIRE(read.status == ControlClient::ReadStatus::line);
    lines.push_back(json::parse(read.line));
  }
  CHECK(lines[0] == json{{"progress", "app:0 replacement ready"}});
  CHECK(lines[1] == json{{"progress", "app:0 old worker stopped"}});
  CHECK(lines[2] == json{{"ok", false}, {"error", "it went wrong"}});

  // A step reported after the restart answered goes nowhere: the next reply is clean.
  server.on_loop([&] { server.handler().last_progress("late step"); });
  REQUIRE(client.send("{\"command\":\"status\",\"id\":\"s\"}\n", 5s));
  auto next = client.read_line(5s);
  REQUIRE(next.status == ControlClient::ReadStatus::line);
  CHECK_FALSE(json::parse(next.line).contains("progress"));
  CHECK(json::parse(next.line)["id"] == "s");
}

TEST_CASE("closing the server during a command ends the connection cleanly", "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().restart_delay = 200ms; });
  auto client = connect_to(server.path());
  REQUIRE(client.send("{\"command\":\"restart\",\"pool\":\"app\"}\n", 5s));
  REQUIRE(eventually_on(server, [&] { return !server.handler().calls.empty(); }));
  server.on_loop([&] { server.server().close(); });
  CHECK(closed_by_server(client));
  // The command finishes later, finds the server closed and writes nothing.
  CHECK(eventually_on(server, [&] { return server.server().connection_count() == 0; }));
}

TEST_CASE("connections beyond the limit get an error and are closed", "[control][server]") {
  ScratchFolder folder;
  manager::ControlServerLimits limits;
  limits.max_connections = 2;
  RunningServer server(folder.file("scgi.sock"), "", limits);
  auto first = connect_to(server.path());
  auto second = connect_to(server.path());
  CHECK(ask(first, "{\"command\":\"status\"}\n")["ok"] == true);
  CHECK(ask(second, "{\"command\":\"status\"}\n")["ok"] == true);
  auto third = connect_to(server.path());
  auto read = third.read_line(5s);
  REQUIRE(read.status == ControlClient::ReadStatus::line);
  CHECK_THAT(json::parse(read.line)["error"].get<std::string>(),
             Catch::StartsWith("too many control connections"));
  CHECK(closed_by_server(third));
}

TEST_CASE("logs gives recent lines and with follow streams new ones until the client leaves",
          "[control][server]") {
  ScratchFolder folder;
  RunningServer server(folder.file("scgi.sock"));
  server.on_loop([&] { server.handler().recent = {"one", "two", "three"}; });

  const json recent = ask(server.path(), R"({"command":"logs","pool":"app","lines":2,"id":1})"
                                         "\n");
  CHECK(recent["ok"] == true);
  CHECK(recent["id"] == 1);
  CHECK(recent["lines"] == json({"two", "three"}));

  const json unknown_pool = ask(server.path(), R"({"command":"logs","pool":"web"})"
                                               "\n");
  CHECK(unknown_pool["error"] == "no pool named web");
  const json unknown_worker = ask(server.path(), R"({"command":"logs","pool":"app","worker":9})"
                                                 "\n");
  CHECK(unknown_worker["error"] ==
        "pool app has no worker 9; its workers are: 0, 1 (see scgictl status app)");

  {
    auto follower = connect_to(server.path());
    const json first = ask(follower, R"({"command":"logs","pool":"app","worker":0,"follow":true})"
                                     "\n");
    CHECK(first["ok"] == true);
    CHECK(first["lines"] == json({"one", "two", "three"}));
    server.on_loop([&] {
      server.handler().emit("four");
      server.handler().emit("caf\xe9");  // not UTF-8: still a line
    });
    for (const char* expected : {"four", "caf\xef\xbf\xbd"}) {
      auto read = follower.read_line(5s);
      REQUIRE(read.status == ControlClient::ReadStatus::line);
      CHECK(json::parse(read.line) == json{{"log", expected}});
    }
    CHECK(server.on_loop([&] { return server.handler().subscribers.size(); }) == 1);
  }
  // The client left: its subscription ends.
  CHECK(eventually_on(server, [&] { return server.handler().subscribers.empty(); }));
  CHECK(server.on_loop([&] { return server.handler().unsubscribed; }) == 1);
}

TEST_CASE("a follower that falls far behind is dropped with an error and memory stays bounded",
          "[control][server]") {
  ScratchFolder folder;
  manager::ControlServerLimits limits;
  limits.max_log_backlog_bytes = 64 * 1024;
  RunningServer server(folder.file("scgi.sock"), "", limits);
  auto follower = connect_to(server.path());
  CHECK(ask(follower, R"({"command":"logs","pool":"app","follow":true})"
                      "\n")["ok"] == true);

  // The stream runs: one line goes through.
  server.on_loop([&] { server.handler().emit("first"); });
  auto first = follower.read_line(5s);
  REQUIRE(first.status == ControlClient::ReadStatus::line);
  CHECK(json::parse(first.line) == json{{"log", "first"}});

  // Then the client reads nothing while 8 MiB of lines arrive, 64 at a time:
  // far more than the socket buffers and the backlog hold.
  const std::string line(1000, 'x');
  for (int batch = 0; batch < 128; ++batch)
    server.on_loop([&] {
      for (int i = 0; i < 64; ++i)
        server.handler().emit(line);
    });

  std::size_t logs = 0;
  json last;
  for (int i = 0; i < 100'000; ++i) {
    auto read = follower.read_line(5s);
    if (read.status != ControlClient::ReadStatus::line) break;
    last = json::parse(read.line);
    if (!last.contains("log")) break;
    ++logs;
  }
  // Whatever fitted in the socket buffers before the backlog ran over, not all.
  CHECK(logs < 8 * 1024);
  CHECK(last["ok"] == false);
  CHECK_THAT(last["error"].get<std::string>(), Catch::StartsWith("log stream stopped: the client "
                                                                 "fell more than 65536 bytes"));
  CHECK(closed_by_server(follower));
  CHECK(eventually_on(server, [&] { return server.handler().subscribers.empty(); }));
}

TEST_CASE("a user of control_group holds at most its share and root always gets in",
          "[control][server]") {
  if (::geteuid() != 0) {
    WARN("not root: cannot run a client as another user");
    return;
  }
  ScratchFolder folder;
  manager::ControlServerLimits limits;
  limits.max_connections = 3;
  limits.max_connections_per_user = 2;
  RunningServer server(folder.file("scgi.sock"), kOtherGroup, limits);
  const gid_t control_gid = group_id(kOtherGroup);

  // One user: two connections, the third refused.
  ForeignConnections nobody(server.path(), kNobody, control_gid, 3);
  CHECK(nobody.outcomes() == "oor");
  // Another user gets its own share, up to the limit of everyone but root.
  ForeignConnections other(server.path(), kNobody - 1, control_gid, 2);
  CHECK(other.outcomes() == "or");

  // Root is counted apart: all of its own budget is there.
  std::vector<ControlClient> root;
  for (int i = 0; i < 3; ++i) {
    root.push_back(connect_to(server.path()));
    CHECK(ask(root.back(), "{\"command\":\"status\"}\n")["ok"] == true);
  }
  auto one_more = connect_to(server.path());
  auto read = one_more.read_line(5s);
  REQUIRE(read.status == ControlClient::ReadStatus::line);
  CHECK_THAT(json::parse(read.line)["error"].get<std::string>(),
             Catch::StartsWith("too many control connections: 3 are open"));
}

TEST_CASE("a connection that sends no complete line within idle_timeout is closed",
          "[control][server]") {
  ScratchFolder folder;
  manager::ControlServerLimits limits;
  limits.idle_timeout = 300ms;
  RunningServer server(folder.file("scgi.sock"), "", limits);

  auto silent = connect_to(server.path());
  auto read = silent.read_line(5s);
  REQUIRE(read.status == ControlClient::ReadStatus::line);
  CHECK(json::parse(read.line) == json{{"ok", false},
                                       {"error",
                                        "no complete request line within 300ms; closing the "
                                        "connection"}});
  CHECK(closed_by_server(silent));

  // A line sent a byte at a time never completes: the deadline is per line.
  auto trickle = connect_to(server.path());
  const std::string half = "{\"command\":\"status\"";
  for (std::size_t i = 0; i < half.size(); ++i) {
    if (!trickle.send(half.substr(i, 1), 1s)) break;  // closed by now
    std::this_thread::sleep_for(50ms);
  }
  CHECK(closed_as_idle(trickle));

  // Between requests the clock starts again after each reply.
  auto talker = connect_to(server.path());
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(150ms);
    CHECK(ask(talker, "{\"command\":\"status\"}\n")["ok"] == true);
  }
  CHECK(closed_as_idle(talker));
}

TEST_CASE("a command running or a log stream is not idle", "[control][server]") {
  ScratchFolder folder;
  manager::ControlServerLimits limits;
  limits.idle_timeout = 200ms;
  RunningServer server(folder.file("scgi.sock"), "", limits);

  // A restart that takes longer than idle_timeout gets its reply.
  server.on_loop([&] { server.handler().restart_delay = 300ms; });
  auto slow = connect_to(server.path());
  CHECK(ask(slow, "{\"command\":\"restart\",\"pool\":\"app\"}\n")["ok"] == true);

  // A follower that says nothing keeps getting lines long past idle_timeout.
  auto follower = connect_to(server.path());
  CHECK(ask(follower, R"({"command":"logs","pool":"app","follow":true})"
                      "\n")["ok"] == true);
  std::this_thread::sleep_for(600ms);
  server.on_loop([&] { server.handler().emit("still here"); });
  auto line = follower.read_line(5s);
  REQUIRE(line.status == ControlClient::ReadStatus::line);
  CHECK(json::parse(line.line) == json{{"log", "still here"}});
}
