#include "scgi/runtime/program_upgrade.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "scgi/log.hpp"
#include "scgi/runtime/service_notifier.hpp"

extern char** environ;

namespace scgi {
namespace {

using asio::experimental::as_tuple;

constexpr const char* kStateVariable = "SCGI_UPGRADE_STATE_FD";
constexpr const char* kFallbackVariable = "SCGI_UPGRADE_FALLBACK_FD";
constexpr const char* kReturnVariable = "SCGI_UPGRADE_RETURN_FD";
constexpr const char* kFailedVariable = "SCGI_UPGRADE_FAILED";
constexpr const char* kCheckFlag = "--upgrade-check";
constexpr std::string_view kApproval = "upgrade check: passed";
// How often keep_trying() tries again.
constexpr std::chrono::seconds kRetryInterval{5};
// Where the check finds the state (it gets no other descriptor of ours).
constexpr int kCheckStateFd = 3;
// How long the new program may take to approve: it reads two files.
constexpr std::chrono::seconds kCheckLimit{10};
// What the new program may say in --upgrade-check before it is cut off.
constexpr std::size_t kMaxCheckOutputBytes = 64 * 1024;

std::string g_program_path;
// scgi_upgrades_total; read by scrapes on the exporter's threads.
std::atomic<std::uint64_t> g_upgrades_done{0};
std::atomic<std::uint64_t> g_upgrades_failed{0};
std::vector<std::string> g_arguments;  // without argv[0]

std::string errno_text() {
  return std::strerror(errno);
}

// The signals daemon_signals.cpp and the manager's reaper take.
sigset_t daemon_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD})
    sigaddset(&set, signal);
  return set;
}

std::string envelope_text(const std::string& program, const nlohmann::json& daemon_state) {
  const nlohmann::json envelope{
      {"format", kHandoverFormat},
      {"program", program},
      {"version", SCGI_VERSION},
      {"upgrades", {{"done", g_upgrades_done.load()}, {"failed", g_upgrades_failed.load()}}},
      {"state", daemon_state}};
  return envelope.dump();
}

// A memory file holding `text`, close-on-exec; -1 with `error` on failure.
int memory_file(const std::string& text, std::string& error) {
  const int fd = ::memfd_create("scgi-upgrade-state", MFD_CLOEXEC);
  if (fd < 0) {
    error = "memfd_create: " + errno_text();
    return -1;
  }
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = "writing the state: " + errno_text();
      ::close(fd);
      return -1;
    }
    written += static_cast<std::size_t>(n);
  }
  return fd;
}

Result<std::string> read_memory_file(int fd) {
  struct stat info {};
  if (::fstat(fd, &info) != 0)
    return Result<std::string>::fail("descriptor " + std::to_string(fd) + ": " + errno_text());
  std::string text(static_cast<std::size_t>(info.st_size), '\0');
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::pread(fd, text.data() + done, text.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Result<std::string>::fail("reading the state: " + errno_text());
    done += static_cast<std::size_t>(n);
  }
  return Result<std::string>::ok(std::move(text));
}

// Sets close-on-exec on every descriptor above stderr but `keep`.
void close_on_exec_all_but(const std::vector<int>& keep) {
  DIR* folder = ::opendir("/proc/self/fd");
  if (folder == nullptr) return;
  while (const dirent* entry = ::readdir(folder)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd <= STDERR_FILENO) continue;
    if (std::find(keep.begin(), keep.end(), fd) == keep.end())
      ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
  }
  ::closedir(folder);
}

// argv for the program file: the remembered arguments, plus `extra`.
std::vector<std::string> program_arguments(const std::vector<std::string>& extra) {
  std::vector<std::string> out{g_program_path};
  out.insert(out.end(), g_arguments.begin(), g_arguments.end());
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

// Our environment without the upgrade's variables, plus `extra`.
std::vector<std::string> environment(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.starts_with(kStateVariable) || text.starts_with(kFallbackVariable) ||
        text.starts_with(kReturnVariable) || text.starts_with(kFailedVariable))
      continue;
    out.emplace_back(text);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

std::optional<int> descriptor_variable(const char* name) {
  const char* text = std::getenv(name);
  if (text == nullptr) return std::nullopt;
  char* end = nullptr;
  const long fd = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || fd < 0 || fd > 1 << 20) return -1;
  return static_cast<int>(fd);
}

// Everything the pipe gives until it closes, up to kMaxCheckOutputBytes.
asio::awaitable<std::string> read_to_end(asio::posix::stream_descriptor& pipe) {
  std::string said;
  std::array<char, 4096> buffer;
  for (;;) {
    auto [ec, n] =
        co_await pipe.async_read_some(asio::buffer(buffer), as_tuple(asio::use_awaitable));
    if (said.size() < kMaxCheckOutputBytes) said.append(buffer.data(), n);
    if (ec) co_return said;
  }
}

}  // namespace

void remember_program(int argc, char** argv) {
  std::array<char, 4096> path{};
  const ssize_t n = ::readlink("/proc/self/exe", path.data(), path.size() - 1);
  g_program_path = n > 0 ? std::string(path.data(), static_cast<std::size_t>(n)) : argv[0];
  // Run again from a file that a package upgrade replaced: the kernel names
  // the old one "(deleted)"; the path is where the new one is.
  constexpr std::string_view kDeleted = " (deleted)";
  if (g_program_path.ends_with(kDeleted))
    g_program_path.resize(g_program_path.size() - kDeleted.size());
  g_arguments.clear();
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) != kCheckFlag) g_arguments.emplace_back(argv[i]);
}

const std::string& program_path() {
  return g_program_path;
}

// --- New image. ---

HandedState::HandedState(HandedState&& other) noexcept
    : state_(std::move(other.state_)),
      return_fd_(std::exchange(other.return_fd_, -1)),
      fallback_fd_(std::exchange(other.fallback_fd_, -1)),
      failed_(std::move(other.failed_)),
      read_error_(std::move(other.read_error_)) {}

HandedState::~HandedState() {
  if (return_fd_ >= 0) ::close(return_fd_);
  if (fallback_fd_ >= 0) ::close(fallback_fd_);
}

std::string HandedState::return_to_previous(const std::string& why) {
  if (fallback_fd_ < 0 || return_fd_ < 0) return "the previous program is not at hand";
  // The same state, and why the upgrade failed (one line, for its log and reply).
  std::string reason = why;
  std::replace(reason.begin(), reason.end(), '\n', ' ');
  auto arguments = program_arguments({});
  // Its own copy of what it handed over, untouched by the new program.
  auto variables = environment({fmt::format("{}={}", kStateVariable, return_fd_),
                                fmt::format("{}={}", kFailedVariable, reason)});
  ::fcntl(return_fd_, F_SETFD, 0);
  const sigset_t blocked = daemon_signals();
  sigset_t before;
  ::pthread_sigmask(SIG_BLOCK, &blocked, &before);
  ::fexecve(fallback_fd_, pointers(arguments).data(), pointers(variables).data());
  const std::string error = "running the previous program again: " + errno_text();
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  ::fcntl(return_fd_, F_SETFD, FD_CLOEXEC);
  return error;
}

std::optional<std::string> HandedState::problem(const std::string& program) const {
  if (!read_error_.empty()) return read_error_;
  if (state_.is_discarded() || !state_.is_object()) return "it is not JSON";
  if (state_.value("format", 0) != kHandoverFormat)
    return fmt::format("its format is {}, this program reads {}", state_.value("format", 0),
                       kHandoverFormat);
  if (state_.value("program", "") != program)
    return fmt::format("it comes from {}, not {}", state_.value("program", "?"), program);
  if (!state_.contains("state") || !state_.at("state").is_object()) return "it holds no state";
  return std::nullopt;
}

std::optional<HandedState> take_handed_state() {
  const auto state_fd = descriptor_variable(kStateVariable);
  if (!state_fd) return std::nullopt;
  int fallback_fd = descriptor_variable(kFallbackVariable).value_or(-1);
  int return_fd = descriptor_variable(kReturnVariable).value_or(-1);
  std::optional<std::string> failed;
  if (const char* text = std::getenv(kFailedVariable)) failed = text;
  for (const char* name : {kStateVariable, kFallbackVariable, kReturnVariable, kFailedVariable})
    ::unsetenv(name);
  if (fallback_fd >= 0 && ::fcntl(fallback_fd, F_SETFD, FD_CLOEXEC) != 0) fallback_fd = -1;
  if (return_fd >= 0 && ::fcntl(return_fd, F_SETFD, FD_CLOEXEC) != 0) return_fd = -1;

  Result<std::string> text =
      Result<std::string>::fail(fmt::format("{} is not an open descriptor", kStateVariable));
  if (*state_fd >= 0 && ::fcntl(*state_fd, F_SETFD, FD_CLOEXEC) == 0) {
    text = read_memory_file(*state_fd);
    ::close(*state_fd);
  }
  HandedState handed(text ? nlohmann::json::parse(text.value(), nullptr, false) : nlohmann::json(),
                     return_fd, fallback_fd, std::move(failed));
  if (!text) handed.read_error_ = text.error();
  // Counted now, before /metrics serves: a scrape never sees the count lower.
  const nlohmann::json counts = handed.state_.is_object() ? handed.upgrades() : nlohmann::json();
  const auto count = [&](const char* name) -> std::uint64_t {
    if (!counts.is_object() || !counts.contains(name) || !counts.at(name).is_number_unsigned())
      return 0;
    return counts.at(name).get<std::uint64_t>();
  };
  g_upgrades_done = count("done");
  g_upgrades_failed = count("failed");
  ++(handed.failed_upgrade() ? g_upgrades_failed : g_upgrades_done);
  return handed;
}

UpgradeCounts upgrade_counts() {
  return {g_upgrades_done.load(), g_upgrades_failed.load()};
}

void finish_upgrade(const std::optional<HandedState>& handed) {
  if (!handed) return;
  // Everything handed over is taken: none of it may reach a process started
  // from now on (workers close all but theirs anyway; an upgrade check too).
  close_on_exec_all_but({});
  notify_main_pid(::getpid());  // the same PID: said for whoever watches it
  if (handed->failed_upgrade())
    log_error("upgrade failed: {}; the previous program ({}) serves on, nothing lost",
              *handed->failed_upgrade(), SCGI_VERSION);
  else
    log_info("upgrade: {} took over from {} in place (same PID, sockets and state)", SCGI_VERSION,
             handed->previous_version());
}

int fail_start(std::optional<HandedState>& handed, const std::string& why) {
  log_error("not starting: {}", why);
  if (handed) log_error("upgrade: {}", handed->return_to_previous("the new program: " + why));
  return 1;
}

void keep_trying(asio::io_context& control, std::function<bool()> attempt) {
  asio::co_spawn(
      control,
      [&control, attempt = std::move(attempt)]() -> asio::awaitable<void> {
        asio::steady_timer pause(control);
        do {
          pause.expires_after(kRetryInterval);
          co_await pause.async_wait(as_tuple(asio::use_awaitable));
        } while (!attempt());
      },
      log_failure("retrying after an upgrade"));
}

bool adopt_descriptor(int fd) {
  // Left inheritable until finish_upgrade(): until then the previous program
  // may have to take it all back (return_to_previous).
  return fd >= 0 && ::fcntl(fd, F_GETFD) >= 0;
}

// --- Old image. ---

// Starts `program --upgrade-check` on the state: its pid and the read end
// of the pipe that takes its stdout and stderr.
struct CheckRun {
  pid_t pid;
  int output_fd;
};
static Result<CheckRun> start_check(const std::string& program,
                                    const nlohmann::json& daemon_state) {
  using R = Result<CheckRun>;
  std::string error;
  const int state_fd = memory_file(envelope_text(program, daemon_state), error);
  if (state_fd < 0) return R::fail(error);
  int out[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(state_fd);
    return R::fail("pipe: " + errno_text());
  }
  auto arguments = program_arguments({kCheckFlag});
  // The check reads the state as descriptor kCheckStateFd (below).
  auto variables = environment({fmt::format("{}={}", kStateVariable, kCheckStateFd)});
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
  // The state as descriptor 3, and nothing else of the daemon (a client
  // socket without close-on-exec would stay open in the check).
  posix_spawn_file_actions_adddup2(&actions, state_fd, kCheckStateFd);
  posix_spawn_file_actions_addclosefrom_np(&actions, kCheckStateFd + 1);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  const sigset_t defaults = daemon_signals();
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, g_program_path.c_str(), &actions, &attributes,
                                    pointers(arguments).data(), pointers(variables).data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  ::close(out[1]);
  ::close(state_fd);
  if (spawned != 0) {
    ::close(out[0]);
    return R::fail(fmt::format("cannot run {}: {}", g_program_path, std::strerror(spawned)));
  }
  return R::ok({pid, out[0]});
}

asio::awaitable<Result<bool>> check_new_program(asio::any_io_executor executor,
                                                const std::string& program,
                                                const nlohmann::json& daemon_state,
                                                std::chrono::milliseconds limit) {
  using R = Result<bool>;
  const auto run = start_check(program, daemon_state);
  if (!run) co_return R::fail(run.error());
  const pid_t pid = run.value().pid;
  // What it says, until it exits (the pipe closes) or is killed at the limit.
  auto deadline = std::make_shared<asio::steady_timer>(executor, limit);
  auto expired = std::make_shared<bool>(false);
  asio::co_spawn(
      executor,
      [deadline, expired, pid]() -> asio::awaitable<void> {
        auto [ec] = co_await deadline->async_wait(as_tuple(asio::use_awaitable));
        if (ec) co_return;
        *expired = true;
        ::kill(pid, SIGKILL);
      },
      log_failure("the upgrade check's deadline"));
  asio::posix::stream_descriptor pipe(executor, run.value().output_fd);
  std::string said = co_await read_to_end(pipe);
  deadline->cancel();
  const bool timed_out = *expired;
  // Its pipe closed as it exited: reap it (here, or the manager's SIGCHLD loop
  // does, hence a bounded wait; the verdict is what it said).
  int status = 0;
  pid_t reaped = 0;
  asio::steady_timer pause(executor);
  for (int i = 0; i < 100 && reaped == 0; ++i) {
    reaped = ::waitpid(pid, &status, WNOHANG);
    if (reaped != 0) break;
    pause.expires_after(std::chrono::milliseconds(10));
    co_await pause.async_wait(as_tuple(asio::use_awaitable));
  }
  if (reaped == 0) {
    ::kill(pid, SIGKILL);
    reaped = ::waitpid(pid, &status, 0);
  }
  while (!said.empty() && (said.back() == '\n' || said.back() == ' '))
    said.pop_back();
  if (timed_out)
    co_return R::fail(fmt::format("{} --upgrade-check did not finish within {} ms{}{}",
                                  g_program_path, limit.count(), said.empty() ? "" : ": ", said));
  const bool approved = said.ends_with(kApproval) &&
                        !(reaped == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0));
  if (!approved) {
    if (said.empty()) said = "it said nothing";
    co_return R::fail(fmt::format("{} --upgrade-check failed: {}", g_program_path, said));
  }
  co_return R::ok(true);
}

std::string replace_program(const std::string& program, const Handover& handover) {
  // The workers' parent-death signal follows the thread that forked them:
  // exec from any other thread would end that one first, and kill them.
  if (::syscall(SYS_gettid) != ::getpid()) return "an upgrade must run on the main thread";
  // Only what the state names crosses the exec: whatever else is open
  // without close-on-exec (a client socket still open, say) closes with it.
  close_on_exec_all_but({});
  std::string error;
  const std::string text = envelope_text(program, handover.daemon_state);
  const int state_fd = memory_file(text, error);
  if (state_fd < 0) return error;
  // The running program and a copy of the state, to come back to should the
  // new program fail to take over.
  const int fallback_fd = ::open("/proc/self/exe", O_RDONLY);  // no O_CLOEXEC: handed on
  const int return_fd = fallback_fd >= 0 ? memory_file(text, error) : -1;
  std::vector<std::string> extra{fmt::format("{}={}", kStateVariable, state_fd)};
  if (fallback_fd >= 0 && return_fd >= 0) {
    ::fcntl(return_fd, F_SETFD, 0);
    extra.push_back(fmt::format("{}={}", kFallbackVariable, fallback_fd));
    extra.push_back(fmt::format("{}={}", kReturnVariable, return_fd));
  }
  auto arguments = program_arguments({});
  auto variables = environment(extra);

  ::fcntl(state_fd, F_SETFD, 0);
  for (int fd : handover.descriptors)
    ::fcntl(fd, F_SETFD, 0);
  const sigset_t blocked = daemon_signals();
  sigset_t before;
  ::pthread_sigmask(SIG_BLOCK, &blocked, &before);
  ::execve(g_program_path.c_str(), pointers(arguments).data(), pointers(variables).data());
  error = fmt::format("cannot run {}: {}", g_program_path, errno_text());
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  for (int fd : handover.descriptors)
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::close(state_fd);
  if (fallback_fd >= 0) ::close(fallback_fd);
  if (return_fd >= 0) ::close(return_fd);
  return error;
}

asio::awaitable<std::string> upgrade_program(asio::any_io_executor executor,
                                             const UpgradeSteps& steps) {
  log_info("upgrade: checking {} on the running state", g_program_path);
  if (auto reason = steps.blocked()) co_return *reason;
  std::vector<int> unused;
  const auto checked =
      co_await check_new_program(executor, steps.program, steps.state(unused), kCheckLimit);
  if (!checked) {
    ++g_upgrades_failed;
    co_return checked.error();
  }
  log_info("upgrade: {} approved; pausing the front doors until it runs", g_program_path);
  notify_reloading("upgrading in place to " + g_program_path);
  co_await steps.pause();
  // Something began meanwhile (a stop, say) that the exec would cut short.
  if (auto reason = steps.blocked()) {
    ++g_upgrades_failed;
    steps.resume();
    notify_ready("upgrade cancelled, serving on: " + *reason);
    co_return *reason;
  }
  Handover handover;
  handover.daemon_state = steps.state(handover.descriptors);
  const std::string error = replace_program(steps.program, handover);
  steps.resume();
  ++g_upgrades_failed;
  notify_ready("upgrade failed, serving on: " + error);
  co_return error;
}

void unblock_daemon_signals() {
  const sigset_t set = daemon_signals();
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

void approve_upgrade() {
  std::fputs(fmt::format("{}\n", kApproval).c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace scgi
