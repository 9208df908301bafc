// Security: worker paths (see docs/security.md), tried from outside against the
// real binaries. A root manager must never connect to, open, write or delete
// through a path that a worker running as another user can change; workers
// that switched user die with the manager; and a root manager runs no worker
// as root unless the pool says so.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "../support/harness.hpp"
#include "scgi/request_writer.hpp"

using namespace scgi;
using namespace scgi::test;
namespace fs = std::filesystem;

namespace {

constexpr uid_t kNobody = 65534;

// What a hostile worker sends through the pool once its socket leads to the
// control socket: the control protocol reads lines, so the SCGI header is one
// malformed line and the body's next line is a command, run as root.
const std::string kStopOther = "\n{\"command\":\"stop\",\"pool\":\"other\"}\n";

bool needs_root() {
  if (::geteuid() == 0) return true;
  WARN("needs root to run workers as nobody: not run");
  return false;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// A scratch folder that `nobody` may enter and read (the scripts live there).
void open_to_everyone(const TempDir& dir) {
  ::chmod(dir.path().c_str(), 0755);
}

// A folder `nobody` may write to.
std::string writable_folder(const TempDir& dir, const std::string& name) {
  const std::string path = dir.file(name);
  fs::create_directory(path);
  ::chmod(path.c_str(), 0777);
  return path;
}

std::string toml_array(const std::vector<std::string>& words) {
  std::string out = "[";
  for (std::size_t i = 0; i < words.size(); ++i)
    out += (i ? ", " : "") + nlohmann::json(words[i]).dump();
  return out + "]";
}

// scgi-manager with pool "app" (given keys) and pool "other" (one sample
// worker), its runtime folder inside `dir` so that the test can look at it.
struct TwoPools {
  Address app_listen = loopback(free_port());
  Address other_listen = loopback(free_port());
  std::uint16_t metrics_port = free_port();
  std::string control_socket;
  Process manager;

  TwoPools(const TempDir& dir, const std::vector<std::string>& app_command,
           const std::string& app_keys, const std::string& manager_keys = "") {
    control_socket = dir.file("scgi.sock");
    dir.write("scgi.toml",
              "[manager]\ncontrol_socket = \"" + control_socket + "\"\n" + manager_keys +
                  "\n[metrics]\nlisten = \"127.0.0.1:" + std::to_string(metrics_port) +
                  "\"\n[[pool]]\nname = \"app\"\nlisten = \"" + app_listen.to_string() +
                  "\"\ncommand = " + toml_array(app_command) +
                  "\nenv = { PATH = \"/usr/local/bin:/usr/bin:/bin\" }\n" + app_keys +
                  "\n[[pool]]\nname = \"other\"\nlisten = \"" + other_listen.to_string() +
                  "\"\ncommand = " + toml_array(sample_worker_command()) +
                  "\nworkers = 1\nallow_root = true\n");
    manager = Process::start({built_binary("scgi-manager"), "--config", dir.file("scgi.toml")},
                             dir.file("manager.log"), {{"RUNTIME_DIRECTORY", dir.path().string()}});
    if (!wait_until_accepting(other_listen) ||
        !eventually([&] { return ready("other") == 1; }, 20s))
      throw std::runtime_error("scgi-manager did not start: " + manager.log());
  }

  double ready(const std::string& pool) const {
    return metric_value(http_get(metrics_port, "/metrics"),
                        "scgi_workers{pool=\"" + pool + "\",state=\"ready\"}");
  }
};

// The runtime folder the manager made in `dir` ("" when there is none).
std::string runtime_folder(const TempDir& dir) {
  for (const auto& entry : fs::directory_iterator(dir.path()))
    if (entry.path().filename().string().starts_with("scgi-manager.")) return entry.path();
  return {};
}

// What the control server executed, from the manager's log.
bool ran_a_control_command(const std::string& log) {
  return log.find("control: stop") != std::string::npos;
}

// A worker for pool "app" in unix mode that puts a symlink to the control
// socket where its socket should be: at once ("before"), or after it served
// the readiness probe from a real socket ("after").
constexpr const char* kSymlinkingWorker = R"(import os, socket, sys, time
mode, path, control = sys.argv[1:4]
if mode == "before":
    os.symlink(control, path)
    time.sleep(3600)
listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(16)
probe, _ = listener.accept()
probe.recv(1)
probe.close()
time.sleep(0.5)  # the manager routes to it
listener.close()
os.unlink(path)
os.symlink(control, path)
time.sleep(3600)
)";

}  // namespace

TEST_CASE("a worker's socket made a symlink to the control socket never reaches it", "[security]") {
  if (!needs_root()) return;
  for (const std::string when : {"before", "after"}) {
    DYNAMIC_SECTION("the symlink is put " << when << " readiness") {
      TempDir dir;
      open_to_everyone(dir);
      dir.write("worker.py", kSymlinkingWorker);
      TwoPools manager(dir,
                       {"python3", dir.file("worker.py"), when, "{socket}", dir.file("scgi.sock")},
                       "socket = \"unix\"\nworkers = 1\nuser = \"nobody\"\nready_timeout = "
                       "\"2s\"\nqueue_timeout = \"1s\"\nrestart_backoff = [\"200ms\", \"1s\"]");
      INFO(manager.manager.log());
      // app-0-INSTANCE.sock, in the pool's folder.
      const fs::path pool_folder = runtime_folder(dir) + "/app";
      const auto planted = [&] {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(pool_folder, ec))
          if (entry.is_symlink(ec)) return true;
        return false;
      };
      REQUIRE(eventually(planted, 15s));
      if (when == "before") {
        // The probe looked and refused: the worker never became ready.
        CHECK(eventually(
            [&] {
              return manager.manager.log().find("is a symbolic link, not the worker's socket") !=
                     std::string::npos;
            },
            10s));
      }
      for (int i = 0; i < 3; ++i) {
        const Response response = send_request(
            manager.app_listen,
            make_request({{"REQUEST_METHOD", "POST"}, {"REQUEST_URI", "/"}}, kStopOther), 10s);
        INFO(response.bytes);
        CHECK((response.status() == 502 || response.status() == 503));
      }
      // The other pool still runs; the control server ran nothing (a command
      // reaching it would be run within this window).
      const bool quiet = holds_for(
          [&] {
            return manager.ready("other") == 1 && !ran_a_control_command(manager.manager.log());
          },
          300ms);
      INFO(manager.manager.log());
      CHECK(quiet);
      CHECK(send_request(manager.other_listen, get_request("/")).status() == 200);
      CHECK(exited_with(manager.manager.stop(SIGTERM, 20s), 0));
    }
  }
}

TEST_CASE("log_dir writable by a worker: POOL.log made a symlink is not written through",
          "[security]") {
  if (!needs_root()) return;
  TempDir dir;
  open_to_everyone(dir);
  const std::string logs = writable_folder(dir, "logs");
  dir.write("precious", "root's file\n");
  ::chmod(dir.file("precious").c_str(), 0600);
  // The worker runs as nobody: it plants the link, then writes a line.
  dir.write("worker.sh",
            "ln -s \"$1\" \"$2/app.log\" && echo planted-the-link && exec sleep 3600\n");
  TwoPools manager(dir, {"/bin/sh", dir.file("worker.sh"), dir.file("precious"), logs},
                   "workers = 1\nuser = \"nobody\"\nready_timeout = \"30s\"",
                   "log_dir = \"" + logs + "\"");
  INFO(manager.manager.log());
  // The line arrives somewhere: the manager's own log (refused) or the link's target.
  REQUIRE(eventually(
      [&] {
        return manager.manager.log().find("planted-the-link") != std::string::npos ||
               read_text(dir.file("precious")).find("planted-the-link") != std::string::npos;
      },
      15s));
  CHECK(read_text(dir.file("precious")) == "root's file\n");
  CHECK(manager.manager.log().find("not writing through the symbolic link " + logs + "/app.log") !=
        std::string::npos);
  CHECK(fs::is_symlink(fs::symlink_status(logs + "/app.log")));
  CHECK(exited_with(manager.manager.stop(SIGTERM, 20s), 0));
}

namespace {

// A worker for pool "app" in unix mode that fills its socket folder for the
// manager's removal at exit: many files, a link and a folder holding a link to
// `outside`, and pairs of a folder dN and a link lN to `outside`. It leaves
// behind a process of its own session (so that stopping the worker's group
// does not stop it) that waits for the removal to begin and then exchanges
// one pair whose two names are still there: a name read as a folder is a link
// when the removal gets to it, and one read as a link is a folder. A removal
// that followed the link would empty `outside`; one that gives up at the
// surprise leaves the runtime folder behind. The files keep the removal busy
// long enough for the exchange to come first, and are few enough that one
// read of the folder lists them all. The process writes its PID to
// `markers`/swapper once armed, and ends by itself after a minute at most.
constexpr const char* kSwappingWorker = R"(import ctypes, os, select, socket, struct, sys, time
path, outside, markers = sys.argv[1:4]
folder = os.path.dirname(path)
for i in range(800):
    open(os.path.join(folder, "f%d" % i), "w").close()
os.symlink(outside, os.path.join(folder, "escape"))
os.mkdir(os.path.join(folder, "sub"))
os.symlink(os.path.join(outside, "keep", "file"), os.path.join(folder, "sub", "file"))
pairs = 20
for i in range(pairs):
    os.mkdir(os.path.join(folder, "d%d" % i))
    os.symlink(outside, os.path.join(folder, "l%d" % i))

def swapper():
    libc = ctypes.CDLL(None, use_errno=True)
    folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    watch = libc.inotify_init1(os.O_CLOEXEC)
    IN_DELETE, IN_IGNORED, RENAME_EXCHANGE = 0x200, 0x8000, 2
    if watch < 0 or libc.inotify_add_watch(watch, folder.encode(), IN_DELETE) < 0:
        return
    with open(os.path.join(markers, "swapper.tmp"), "w") as out:
        out.write(str(os.getpid()))
    os.rename(os.path.join(markers, "swapper.tmp"), os.path.join(markers, "swapper"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([watch], [], [], deadline - time.monotonic())
        if not ready:
            return
        events = os.read(watch, 65536)
        offset = 0
        while offset < len(events):
            _, mask, _, length = struct.unpack_from("iIII", events, offset)
            name = events[offset + 16:offset + 16 + length].rstrip(b"\0")
            offset += 16 + length
            if mask & IN_IGNORED:  # the folder is gone
                return
            # The manager unlinks a stopped worker's socket before the removal.
            if name and not name.endswith(b".sock"):
                for i in range(pairs):
                    if libc.renameat2(folder_fd, b"d%d" % i, folder_fd, b"l%d" % i,
                                      RENAME_EXCHANGE) == 0:
                        return
                return

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        try:
            swapper()
        finally:
            os._exit(0)
    os._exit(0)
os.wait()
listener = socket.socket(socket.AF_UNIX)
listener.bind(path)
listener.listen(16)
while True:
    connection, _ = listener.accept()
    connection.close()
)";

}  // namespace

TEST_CASE("at exit the runtime folder goes without following what a worker left", "[security]") {
  if (!needs_root()) return;
  TempDir dir;
  open_to_everyone(dir);
  const std::string markers = writable_folder(dir, "markers");
  fs::create_directories(dir.file("outside/keep"));
  dir.write("outside/keep/file", "keep me\n");
  dir.write("worker.py", kSwappingWorker);
  TwoPools manager(dir,
                   {"python3", dir.file("worker.py"), "{socket}", dir.file("outside"), markers},
                   "socket = \"unix\"\nworkers = 1\nuser = \"nobody\"\nready_timeout = \"30s\"");
  INFO(manager.manager.log());
  REQUIRE(eventually([&] { return manager.ready("app") == 1; }, 30s));
  const std::string runtime = runtime_folder(dir);
  REQUIRE_FALSE(runtime.empty());
  CHECK(fs::is_symlink(fs::symlink_status(runtime + "/app/escape")));
  REQUIRE(eventually([&] { return fs::exists(markers + "/swapper"); }, 15s));
  const pid_t swapper = std::stoi(read_text(markers + "/swapper"));

  CHECK(exited_with(manager.manager.stop(SIGTERM, 20s), 0));
  // It exchanged a pair as soon as the removal began, and has ended.
  const bool swapper_ended = eventually([&] { return !process_exists(swapper); }, 10s);
  if (!swapper_ended) ::kill(swapper, SIGKILL);
  CHECK(swapper_ended);
  INFO(manager.manager.log());
  CHECK(read_text(dir.file("outside/keep/file")) == "keep me\n");
  CHECK_FALSE(fs::exists(fs::symlink_status(runtime)));
}

namespace {

// Listens on 127.0.0.1:port as the test's user (root) and records what
// arrives: the process that took a port meant for a worker.
class PortThief {
 public:
  explicit PortThief(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd_, 16) != 0)
      throw std::runtime_error("cannot take port " + std::to_string(port));
    thread_ = std::thread([this] {
      while (!stop_) {
        const int connection = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (connection < 0) return;
        char buffer[4096];
        timeval timeout{1, 0};
        ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        const ssize_t n = ::recv(connection, buffer, sizeof buffer, 0);
        if (n > 0) {
          bytes_ += static_cast<std::size_t>(n);
          const std::string answer = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nstolen\n";
          (void)!::send(connection, answer.data(), answer.size(), MSG_NOSIGNAL);
        }
        ::close(connection);
      }
    });
  }
  ~PortThief() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::size_t bytes() const { return bytes_; }

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<std::size_t> bytes_{0};
  std::thread thread_;
};

}  // namespace

TEST_CASE("a port taken by another user before the worker binds it gets no request", "[security]") {
  if (!needs_root()) return;
  TempDir dir;
  open_to_everyone(dir);
  const std::string markers = writable_folder(dir, "markers");
  // A worker that says which port it was given, and never binds it.
  dir.write("worker.sh",
            "echo \"$1\" > \"$2/port.tmp\" && mv \"$2/port.tmp\" \"$2/port\" && exec "
            "sleep 3600\n");
  TwoPools manager(dir, {"/bin/sh", dir.file("worker.sh"), "{port}", markers},
                   "socket = \"port\"\nworkers = 1\nuser = \"nobody\"\nready_timeout = "
                   "\"5s\"\nqueue_timeout = \"1s\"");
  INFO(manager.manager.log());
  REQUIRE(eventually([&] { return fs::exists(markers + "/port"); }, 15s));
  const auto port = static_cast<std::uint16_t>(std::stoi(read_text(markers + "/port")));
  PortThief thief(port);  // root, in the worker's place
  CHECK(eventually(
      [&] {
        return manager.manager.log().find("127.0.0.1:" + std::to_string(port) +
                                          " is held by uid 0, not by the pool's user (uid " +
                                          std::to_string(kNobody) + ")") != std::string::npos;
      },
      10s));
  for (int i = 0; i < 3; ++i)
    CHECK(send_request(manager.app_listen, get_request("/"), 10s).status() == 503);
  CHECK(thief.bytes() == 0);
  CHECK(manager.ready("app") == 0);
  CHECK(exited_with(manager.manager.stop(SIGTERM, 20s), 0));
}

TEST_CASE("workers that switched user die with a manager killed by SIGKILL", "[security]") {
  if (!needs_root()) return;
  TempDir dir;
  open_to_everyone(dir);
  const Address listen = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = listen,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 3\nuser = \"nobody\""},
                         3);
  const std::set<pid_t> workers = manager.worker_pids();
  REQUIRE(workers.size() == 3);
  manager.process().signal(SIGKILL);
  REQUIRE(manager.process().wait(10s));
  const bool all_gone = eventually(
      [&] {
        for (const pid_t pid : workers)
          if (process_exists(pid)) return false;
        return true;
      },
      10s);
  CHECK(all_gone);
  for (const pid_t pid : workers)  // what survived must not outlive the test
    if (process_exists(pid)) ::kill(-pid, SIGKILL);
}

TEST_CASE("a root manager runs no worker as root unless the pool allows it", "[security]") {
  if (!needs_root()) return;
  TempDir dir;
  const Address listen = loopback(free_port());
  const auto check = [&](const std::string& pool_keys) {
    dir.write("check.toml", managed_pool_config({.listen = listen,
                                                 .command = sample_worker_command(),
                                                 .pool_keys = pool_keys,
                                                 .metrics_port = free_port()},
                                                dir.file("check.sock")));
    Process run = Process::start(
        {built_binary("scgi-manager"), "--check", "--config", dir.file("check.toml")},
        dir.file("check.out"));
    const auto status = run.wait(30s);
    return std::pair{status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1, run.log()};
  };
  // managed_pool_config adds allow_root = true unless the keys choose; these do.
  SECTION("no user: --check names the place and what to do, and the manager does not start") {
    const auto [code, output] = check("workers = 1\nallow_root = false");
    CHECK(code == 2);
    CHECK_THAT(output, Catch::Contains(dir.file("check.toml") +
                                       ":11:1: pool \"app\" has no user, "
                                       "and scgi-manager runs as root: its workers would run "
                                       "as root; set user = \"NAME\""));
    Process run = Process::start({built_binary("scgi-manager"), "--config", dir.file("check.toml")},
                                 dir.file("run.out"));
    const auto status = run.wait(30s);
    REQUIRE(status);
    CHECK(exited_with(*status, 2));
    CHECK_THAT(run.log(), Catch::Contains("has no user"));
    CHECK_FALSE(wait_until_accepting(listen, 200ms));
  }
  SECTION("group without user, and user = \"root\", are refused too") {
    const auto [group_code, group_output] = check("workers = 1\ngroup = \"nogroup\"");
    CHECK(group_code == 2);
    CHECK_THAT(group_output, Catch::Contains("sets group but not user: its workers would keep "
                                             "uid 0 (root)"));
    const auto [root_code, root_output] = check("workers = 1\nuser = \"root\"");
    CHECK(root_code == 2);
    CHECK_THAT(root_output, Catch::Contains("user = \"root\" runs the workers of pool \"app\" as "
                                            "root"));
  }
  SECTION("allow_root = true: it starts, and a reload that drops it is refused") {
    const auto [code, output] = check("workers = 1\nallow_root = true");
    CHECK(code == 0);
    ManagerProcess manager(dir,
                           {.listen = listen,
                            .command = sample_worker_command(),
                            .pool_keys = "workers = 1\nallow_root = true"},
                           1);
    ManagedPool without{.listen = listen,
                        .command = sample_worker_command(),
                        .pool_keys = "workers = 1\nallow_root = false",
                        .metrics_port = manager.metrics_port()};
    dir.write("scgi.toml", managed_pool_config(without, manager.control_socket()));
    const CtlRun reload = scgictl(dir, manager, {"reload"});
    CHECK(reload.exit_code == 1);
    CHECK_THAT(reload.err, Catch::Contains("has no user, and scgi-manager runs as root"));
    CHECK_THAT(reload.err, Catch::Contains("the running configuration stays"));
    CHECK(send_request(listen, get_request("/")).status() == 200);
  }
}

TEST_CASE("a manager that is not root refuses at --check a user it cannot switch its workers to",
          "[security]") {
  if (!needs_root()) return;  // to run it as another user
  TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms::others_exec,
                               std::filesystem::perm_options::add);
  dir.write("check.toml", managed_pool_config({.listen = loopback(free_port()),
                                               .command = sample_worker_command(),
                                               .pool_keys = "workers = 1\nuser = \"root\"",
                                               .metrics_port = free_port()},
                                              dir.file("check.sock")));
  std::filesystem::permissions(dir.file("check.toml"), std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  Process run =
      Process::start({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                      built_binary("scgi-manager"), "--check", "--config", dir.file("check.toml")},
                     dir.file("check.out"));
  const auto status = run.wait(30s);
  REQUIRE(status);
  INFO(run.log());
  CHECK(exited_with(*status, 2));
  CHECK_THAT(run.log(), Catch::Contains("user = \"root\" needs scgi-manager to run as root to "
                                        "switch its workers to it (it runs as uid 65534)"));
}
