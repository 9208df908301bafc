#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

extern char** environ;

namespace scgi::test {

Process Process::start(std::vector<std::string> argv, const std::string& log_path,
                       const std::map<std::string, std::string>& env, const std::string& err_path) {
  // Everything the child needs is prepared before fork: after it, only
  // async-signal-safe calls until exec.
  std::map<std::string, std::string> merged;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const auto eq = entry.find('=');
    if (eq != std::string::npos) merged[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [key, value] : env)
    merged[key] = value;
  std::vector<std::string> env_strings;
  for (const auto& [key, value] : merged)
    env_strings.push_back(key + "=" + value);
  std::vector<char*> env_ptrs;
  for (auto& s : env_strings)
    env_ptrs.push_back(s.data());
  env_ptrs.push_back(nullptr);
  std::vector<char*> arg_ptrs;
  for (auto& s : argv)
    arg_ptrs.push_back(s.data());
  arg_ptrs.push_back(nullptr);

  const auto open_log = [](const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int error = errno;
      throw std::runtime_error("cannot open " + path + ": " + std::strerror(error));
    }
    return fd;
  };
  const int log_fd = open_log(log_path);
  int err_fd = log_fd;
  if (!err_path.empty()) {
    try {
      err_fd = open_log(err_path);
    } catch (...) {
      ::close(log_fd);
      throw;
    }
  }
  const auto close_logs = [&] {
    ::close(log_fd);
    if (err_fd != log_fd) ::close(err_fd);
  };
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    close_logs();
    throw std::runtime_error(std::string("fork: ") + std::strerror(error));
  }
  if (pid == 0) {
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::setpgid(0, 0);  // its own group: a test's Ctrl-C does not reach it twice
    ::execvpe(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    const char message[] = "exec failed\n";
    (void)!::write(STDERR_FILENO, message, sizeof message - 1);
    ::_exit(127);
  }
  close_logs();
  Process process;
  process.pid_ = pid;
  process.log_path_ = log_path;
  return process;
}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), status_(other.status_), log_path_(other.log_path_) {}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) stop();
    pid_ = std::exchange(other.pid_, -1);
    status_ = other.status_;
    log_path_ = other.log_path_;
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0) stop(SIGTERM, 5s);
}

bool Process::running() {
  if (pid_ <= 0 || status_) return false;
  return !wait(0ms).has_value();
}

void Process::signal(int signal_number) const {
  if (pid_ > 0 && !status_) ::kill(pid_, signal_number);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (status_) return status_;
  if (pid_ <= 0) return std::nullopt;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      status_ = status;
      return status_;
    }
    if (done < 0 && errno != EINTR) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

int Process::stop(int signal_number, std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (!status_) {
    ::kill(pid_, signal_number);
    if (!wait(grace)) {
      ::kill(pid_, SIGKILL);
      wait(10s);
    }
  }
  const int status = status_.value_or(-1);
  pid_ = -1;
  return status;
}

std::string Process::log() const {
  std::ifstream in(log_path_);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string describe_status(int wait_status) {
  if (WIFEXITED(wait_status)) return "exited " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) return "killed by signal " + std::to_string(WTERMSIG(wait_status));
  return "status " + std::to_string(wait_status);
}

bool exited_with(int wait_status, int code) {
  return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == code;
}

}  // namespace scgi::test
