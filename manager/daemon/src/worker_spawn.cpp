#include "worker_spawn.hpp"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "scgi/runtime/file_limit.hpp"

namespace scgi::manager {
namespace {

// What failed in the child before exec, sent to the parent through a pipe.
enum class ChildStep : int {
  session,
  parent_death,
  descriptors,
  file_limit,
  cwd,
  groups,
  gid,
  uid,
  exec
};

struct ChildFailure {
  ChildStep step;
  int error;
};

const char* step_text(ChildStep step) {
  switch (step) {
    case ChildStep::session:
      return "setsid";
    case ChildStep::parent_death:
      return "prctl(PR_SET_PDEATHSIG)";
    case ChildStep::descriptors:
      return "setting up its descriptors";
    case ChildStep::file_limit:
      return "setrlimit(RLIMIT_NOFILE)";
    case ChildStep::cwd:
      return "changing to cwd";
    case ChildStep::groups:
      return "setgroups";
    case ChildStep::gid:
      return "setgid";
    case ChildStep::uid:
      return "setuid";
    case ChildStep::exec:
      return "exec";
  }
  return "?";
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  for (std::size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

// argv[0] as exec will find it: a path with a slash is used as it is; a bare
// name is looked up in the pool's PATH, else the manager's.
Result<std::string> resolve_program(const std::string& name, const PoolConfig& pool) {
  if (name.find('/') != std::string::npos) return Result<std::string>::ok(name);
  std::string search;
  if (const auto it = pool.env.find("PATH"); it != pool.env.end()) {
    search = it->second;
  } else if (const char* ours = std::getenv("PATH"); ours != nullptr) {
    search = ours;
  } else {
    search = "/usr/local/bin:/usr/bin:/bin";
  }
  std::size_t start = 0;
  while (start <= search.size()) {
    const std::size_t colon = search.find(':', start);
    std::string dir =
        search.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (dir.empty()) dir = ".";
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return Result<std::string>::ok(candidate);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return Result<std::string>::fail("command \"" + name + "\" is not in PATH (" + search +
                                   "): write its full path, or set PATH in the pool's env");
}

}  // namespace

Result<uid_t> worker_uid(const PoolConfig& pool) {
  if (pool.user.empty()) return Result<uid_t>::ok(::geteuid());
  const passwd* user = ::getpwnam(pool.user.c_str());
  if (user == nullptr) return Result<uid_t>::fail("no user \"" + pool.user + "\" on this machine");
  return Result<uid_t>::ok(user->pw_uid);
}

namespace {

// The manager's own user and group (or none): what a manager that is not
// root runs its workers as anyway.
bool names_own_identity(const PoolConfig& pool) {
  const passwd* user = pool.user.empty() ? nullptr : ::getpwnam(pool.user.c_str());
  const group* group = pool.group.empty() ? nullptr : ::getgrnam(pool.group.c_str());
  return (pool.user.empty() || (user && user->pw_uid == ::geteuid())) &&
         (pool.group.empty() || (group && group->gr_gid == ::getegid()));
}

struct Credentials {
  bool change = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

Result<Credentials> look_up_credentials(const PoolConfig& pool) {
  using R = Result<Credentials>;
  Credentials out;
  if (pool.user.empty() && pool.group.empty()) return R::ok(out);
  if (::geteuid() != 0 && names_own_identity(pool)) return R::ok(out);  // nothing to switch
  if (::geteuid() != 0)
    return R::fail("user/group \"" + pool.user + "\"/\"" + pool.group +
                   "\" needs the manager to run as root to switch to them");
  out.change = true;
  out.uid = ::getuid();
  out.gid = ::getgid();
  if (!pool.user.empty()) {
    const passwd* user = ::getpwnam(pool.user.c_str());
    if (user == nullptr) return R::fail("no user \"" + pool.user + "\" on this machine");
    out.uid = user->pw_uid;
    out.gid = user->pw_gid;
    int count = 64;
    out.groups.resize(static_cast<std::size_t>(count));
    if (::getgrouplist(pool.user.c_str(), out.gid, out.groups.data(), &count) < 0) {
      out.groups.resize(static_cast<std::size_t>(count));
      ::getgrouplist(pool.user.c_str(), out.gid, out.groups.data(), &count);
    }
    out.groups.resize(static_cast<std::size_t>(count));
  }
  if (!pool.group.empty()) {
    const group* found = ::getgrnam(pool.group.c_str());
    if (found == nullptr) return R::fail("no group \"" + pool.group + "\" on this machine");
    out.gid = found->gr_gid;
    if (pool.user.empty()) out.groups = {out.gid};
  }
  return R::ok(out);
}

// Writes `value` in decimal into `out` (async-signal-safe: no allocation).
void write_decimal(char* out, long value) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value > 0 && n < 23);
  while (n > 0)
    *out++ = digits[--n];
  *out = '\0';
}

[[noreturn]] void child_fail(int report_fd, ChildStep step) {
  const ChildFailure failure{step, errno};
  (void)!::write(report_fd, &failure, sizeof failure);
  ::_exit(127);
}

}  // namespace

Result<WorkerCommand> build_worker_command(const PoolConfig& pool, std::uint32_t worker_index,
                                           const WorkerSocket& socket) {
  using R = Result<WorkerCommand>;
  if (pool.command.empty()) return R::fail("pool " + pool.name + " has no command");
  const std::string placeholder = socket.mode() == SocketMode::port          ? "{port}"
                                  : socket.mode() == SocketMode::unix_socket ? "{socket}"
                                                                             : "";
  const std::string value = socket.placeholder_value();
  WorkerCommand command;
  for (const std::string& arg : pool.command)
    command.argv.push_back(replace_all(arg, placeholder, value));
  auto program = resolve_program(command.argv.front(), pool);
  if (!program) return R::fail(program.error());
  command.path = std::move(program).value();

  std::map<std::string, std::string> env;
  for (const auto& [name, text] : pool.env)
    env[name] = replace_all(text, placeholder, value);
  env["SCGI_POOL"] = pool.name;
  env["SCGI_WORKER"] = std::to_string(worker_index);
  if (socket.mode() == SocketMode::inherit) env["LISTEN_FDS"] = "1";
  for (const auto& [name, text] : env)
    command.env.push_back(name + "=" + text);
  return R::ok(std::move(command));
}

Result<pid_t> spawn_worker(const PoolConfig& pool, std::uint32_t worker_index,
                           const WorkerSocket& socket, const SpawnOptions& options) {
  using R = Result<pid_t>;
  auto built = build_worker_command(pool, worker_index, socket);
  if (!built) return R::fail(built.error());
  WorkerCommand command = std::move(built).value();
  auto credentials_result = look_up_credentials(pool);
  if (!credentials_result) return R::fail(credentials_result.error());
  const Credentials credentials = std::move(credentials_result).value();
  if (credentials.change && socket.mode() == SocketMode::unix_socket) {
    // The worker binds {socket} itself, after it has dropped to its user: the
    // pool's socket folder must be that user's. By descriptor: its path is not
    // followed once the folder may be the worker's.
    if (::fchown(socket.folder_fd(), credentials.uid, credentials.gid) != 0)
      return R::fail("cannot give the socket folder of " + socket.address().path +
                     " to user/group \"" + pool.user + "\"/\"" + pool.group +
                     "\": " + std::strerror(errno));
  }

  // Everything the child needs is made before fork: after it, only
  // async-signal-safe calls until exec.
  std::vector<char*> argv;
  for (auto& arg : command.argv)
    argv.push_back(arg.data());
  argv.push_back(nullptr);
  const bool inherit = socket.mode() == SocketMode::inherit;
  std::string listen_pid =
      "LISTEN_PID=" + std::string(24, '\0');  // the pid is written in the child
  std::vector<char*> envp;
  for (auto& entry : command.env)
    envp.push_back(entry.data());
  if (inherit) envp.push_back(listen_pid.data());
  envp.push_back(nullptr);
  const pid_t manager_pid = ::getpid();
  // The manager raised its own soft limit; a worker gets the one it would have
  // had if started directly (systemd's 1024 keeps select() safe), and may
  // raise it itself up to the same hard limit.
  const rlimit worker_file_limit = started_with_file_limit();

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return R::fail(std::string("pipe: ") + std::strerror(errno));

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(report[0]);
    ::close(report[1]);
    return R::fail(std::string("fork: ") + std::strerror(error));
  }
  if (pid == 0) {
    // The child. Its own session and process group: every stop signal goes to
    // the whole group, so what the app forks goes with it.
    if (::setsid() < 0) child_fail(report[1], ChildStep::session);
    // Lift every descriptor we keep above 9 first, so that placing them at
    // 0-4 cannot overwrite one another.
    const int keep_report = ::fcntl(report[1], F_DUPFD_CLOEXEC, 10);
    const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    const int out =
        ::fcntl(options.stdout_fd >= 0 ? options.stdout_fd : null_fd, F_DUPFD_CLOEXEC, 10);
    const int err =
        ::fcntl(options.stderr_fd >= 0 ? options.stderr_fd : null_fd, F_DUPFD_CLOEXEC, 10);
    const int listen = inherit ? ::fcntl(socket.listen_fd(), F_DUPFD_CLOEXEC, 10) : -1;
    if (keep_report < 0 || null_fd < 0 || out < 0 || err < 0 || (inherit && listen < 0))
      child_fail(report[1], ChildStep::descriptors);
    if (::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(out, STDOUT_FILENO) < 0 ||
        ::dup2(err, STDERR_FILENO) < 0)
      child_fail(keep_report, ChildStep::descriptors);
    if (inherit && ::dup2(listen, 3) < 0) child_fail(keep_report, ChildStep::descriptors);
    if (!inherit) ::close(3);
    if (::dup3(keep_report, 4, O_CLOEXEC) < 0) child_fail(keep_report, ChildStep::descriptors);
    ::close_range(5, ~0U, 0);
    const int report_fd = 4;

    // Dispositions the manager set (SIGPIPE ignored) must not reach the app.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal_number = 1; signal_number < NSIG; ++signal_number)
      ::signal(signal_number, SIG_DFL);
    if (::setrlimit(RLIMIT_NOFILE, &worker_file_limit) != 0)
      child_fail(report_fd, ChildStep::file_limit);

    if (!pool.cwd.empty() && ::chdir(pool.cwd.c_str()) != 0) child_fail(report_fd, ChildStep::cwd);
    if (credentials.change) {
      if (::setgroups(credentials.groups.size(), credentials.groups.data()) != 0)
        child_fail(report_fd, ChildStep::groups);
      if (::setgid(credentials.gid) != 0) child_fail(report_fd, ChildStep::gid);
      if (::setuid(credentials.uid) != 0) child_fail(report_fd, ChildStep::uid);
    }
    // After the switch of user: the kernel clears the parent-death signal
    // whenever the credentials change, so one set earlier would be lost.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(report_fd, ChildStep::parent_death);
    if (::getppid() != manager_pid) ::_exit(127);  // the manager died before prctl
    if (inherit) write_decimal(listen_pid.data() + 11, static_cast<long>(::getpid()));
    ::execve(command.path.c_str(), argv.data(), envp.data());
    child_fail(report_fd, ChildStep::exec);
  }

  // The parent: the report pipe closes without a word when exec succeeded.
  ::close(report[1]);
  ChildFailure failure{};
  ssize_t got = 0;
  do {
    got = ::read(report[0], &failure, sizeof failure);
  } while (got < 0 && errno == EINTR);
  ::close(report[0]);
  if (got == 0) return R::ok(pid);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (got != static_cast<ssize_t>(sizeof failure))
    return R::fail("worker " + std::to_string(worker_index) + " of pool " + pool.name +
                   " failed before exec");
  return R::fail("cannot start " + command.path + " (pool " + pool.name + ", worker " +
                 std::to_string(worker_index) + "): " + step_text(failure.step) + ": " +
                 std::strerror(failure.error));
}

}  // namespace scgi::manager
