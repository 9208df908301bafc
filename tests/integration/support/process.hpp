// Starts the real binaries (and third-party servers) for integration tests
// and stops them by PID: SIGTERM, then SIGKILL if they linger. Never by name.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace scgi::test {

using namespace std::chrono_literals;

class Process {
 public:
  // argv[0] is a path (or a name found on PATH). stdout and stderr go to `log_path`,
  // or stderr to `err_path` when one is given. `env` is added to (or overrides)
  // the test's own environment.
  static Process start(std::vector<std::string> argv, const std::string& log_path,
                       const std::map<std::string, std::string>& env = {},
                       const std::string& err_path = "");

  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  ~Process();

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int signal_number) const;
  // Waits for the exit; the raw wait status, or nullopt if still running after `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  // SIGTERM (or `signal_number`), then SIGKILL after `grace`; returns the wait status.
  int stop(int signal_number = 15, std::chrono::milliseconds grace = 10s);
  std::string log() const;  // what it has written so far
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

// "exited 0", "killed by signal 9": for assertion messages.
std::string describe_status(int wait_status);
bool exited_with(int wait_status, int code);

// Polls `condition` every 10 ms until true or `timeout`; returns the last result.
template <class F>
bool eventually(F condition, std::chrono::milliseconds timeout = 10s);

// Checks `condition` every 10 ms for `period`; true when it held every time. For
// "nothing happens": `period` is a window in which the failure would show.
template <class F>
bool holds_for(F condition, std::chrono::milliseconds period);

}  // namespace scgi::test

#include <thread>

template <class F>
bool scgi::test::eventually(F condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

template <class F>
bool scgi::test::holds_for(F condition, std::chrono::milliseconds period) {
  const auto deadline = std::chrono::steady_clock::now() + period;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!condition()) return false;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}
