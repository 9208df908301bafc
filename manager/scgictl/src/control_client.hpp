// scgictl's side of the control socket: a blocking connection to the manager
// that sends request lines and reads reply lines, each under a deadline.
// Failures say what happened and what to do next.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "scgi/result.hpp"

namespace scgi::ctl {

// Where scgictl connects unless told otherwise: $SCGI_SOCKET, else the
// configuration's default, /run/scgi/scgi.sock.
inline constexpr std::string_view kDefaultControlSocket = "/run/scgi/scgi.sock";
std::string default_control_socket();

// "cannot connect to PATH: ERROR: the next step for a person to take", one line.
std::string connect_failure_message(const std::string& path, int error);

class ControlClient {
 public:
  // A reply line longer than this is a broken manager, not a big status.
  static constexpr std::size_t kMaxReplyBytes = 256 * 1024 * 1024;

  // Fails with connect_failure_message().
  static Result<ControlClient> connect(const std::string& path, std::chrono::milliseconds timeout);

  ControlClient(ControlClient&& other) noexcept;
  ControlClient& operator=(ControlClient&& other) noexcept;
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;
  ~ControlClient();

  // Sends all of `line` (which ends in "\n"); the message says why not.
  Result<bool> send(std::string_view line, std::chrono::milliseconds timeout);

  // interrupted: `interrupt_fd` became readable (a signal arrived) first.
  enum class ReadStatus { line, closed, timed_out, failed, interrupted };
  struct ReadOutcome {
    ReadStatus status = ReadStatus::failed;
    std::string line{};   // without its newline, when status == line
    std::string error{};  // when failed
  };
  // The next line; waits at most `timeout` (nullopt: as long as it takes;
  // 0: takes only what has arrived, keeping a partial line for the next call),
  // or until `interrupt_fd` (when >= 0) is readable.
  ReadOutcome read_line(std::optional<std::chrono::milliseconds> timeout, int interrupt_fd = -1);

  int fd() const { return fd_; }

 private:
  explicit ControlClient(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  int fd_ = -1;
  std::string path_;
  std::string buffer_;  // bytes received after the last line returned
};

}  // namespace scgi::ctl
