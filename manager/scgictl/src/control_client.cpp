#include "control_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "scgi/units.hpp"

namespace scgi::ctl {
namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline` for poll(): -1 = no deadline, 0 = none left.
int poll_timeout(std::optional<Clock::time_point> deadline) {
  if (!deadline) return -1;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<long long>(left.count(), 1'000'000'000));
}

}  // namespace

std::string default_control_socket() {
  const char* from_environment = std::getenv("SCGI_SOCKET");
  if (from_environment != nullptr && *from_environment != '\0') return from_environment;
  return std::string(kDefaultControlSocket);
}

std::string connect_failure_message(const std::string& path, int error) {
  const std::string point_elsewhere =
      "point --socket (or SCGI_SOCKET) at the control_socket of its configuration";
  std::string next;
  switch (error) {
    case EACCES:
    case EPERM:
      next =
          "run scgictl as root, as the manager's user, or as a member of its [manager] "
          "control_group";
      break;
    case ECONNREFUSED:
      next = fmt::format(
          "nothing accepts on it, so scgi-manager is not running there (the file is left from "
          "an earlier run); start it with scgi-manager --config FILE, or {}",
          point_elsewhere);
      break;
    case EAGAIN:
      next =
          "the manager did not accept the connection in time: it may be overloaded or stuck; "
          "try again, and see its log";
      break;
    default:
      next = fmt::format(
          "is scgi-manager running? Start it with scgi-manager --config FILE, or {} (default {})",
          point_elsewhere, kDefaultControlSocket);
      break;
  }
  return fmt::format("cannot connect to {}: {}: {}", path, std::strerror(error), next);
}

Result<ControlClient> ControlClient::connect(const std::string& path,
                                             std::chrono::milliseconds timeout) {
  using R = Result<ControlClient>;
  sockaddr_un address{};
  if (path.empty() || path.size() >= sizeof address.sun_path)
    return R::fail(fmt::format("cannot connect to \"{}\": a socket path is 1 to {} bytes long",
                               path, sizeof address.sun_path - 1));
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return R::fail(fmt::format("cannot create a socket: {}", std::strerror(errno)));
  // A Unix connect only waits when the manager's backlog is full; SO_SNDTIMEO
  // bounds that wait (EAGAIN).
  timeval limit{};
  limit.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  limit.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  int result = 0;
  do {
    result = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  } while (result != 0 && errno == EINTR);
  if (result != 0) {
    const int error = errno;
    ::close(fd);
    return R::fail(connect_failure_message(path, error));
  }
  // From here on every wait goes through poll() with its own deadline.
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    const int error = errno;
    ::close(fd);
    return R::fail(
        fmt::format("cannot set up the connection to {}: {}", path, std::strerror(error)));
  }
  return R::ok(ControlClient(fd, path));
}

ControlClient::ControlClient(ControlClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      buffer_(std::move(other.buffer_)) {}

ControlClient& ControlClient::operator=(ControlClient&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

ControlClient::~ControlClient() {
  if (fd_ >= 0) ::close(fd_);
}

Result<bool> ControlClient::send(std::string_view line, std::chrono::milliseconds timeout) {
  using R = Result<bool>;
  const auto deadline = Clock::now() + timeout;
  while (!line.empty()) {
    const ssize_t sent = ::send(fd_, line.data(), line.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      line.remove_prefix(static_cast<std::size_t>(sent));
      continue;
    }
    if (sent < 0 && errno == EINTR) continue;
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
      return R::fail(fmt::format("cannot send the request to {}: {}", path_, std::strerror(errno)));
    pollfd wait{fd_, POLLOUT, 0};
    const int ready = ::poll(&wait, 1, poll_timeout(deadline));
    if (ready == 0)
      return R::fail(fmt::format("the manager on {} did not take the request within {}", path_,
                                 format_duration(timeout)));
    if (ready < 0 && errno != EINTR)
      return R::fail(fmt::format("cannot send the request to {}: {}", path_, std::strerror(errno)));
  }
  return R::ok(true);
}

ControlClient::ReadOutcome ControlClient::read_line(
    std::optional<std::chrono::milliseconds> timeout, int interrupt_fd) {
  std::optional<Clock::time_point> deadline;
  if (timeout) deadline = Clock::now() + *timeout;
  std::size_t searched = 0;  // bytes of buffer_ known to hold no newline
  for (;;) {
    const auto newline = buffer_.find('\n', searched);
    if (newline != std::string::npos) {
      ReadOutcome outcome{ReadStatus::line, buffer_.substr(0, newline), {}};
      buffer_.erase(0, newline + 1);
      return outcome;
    }
    searched = buffer_.size();
    if (buffer_.size() > kMaxReplyBytes)
      return {ReadStatus::failed,
              {},
              fmt::format("the reply from {} is longer than {} bytes", path_,
                          format_size(kMaxReplyBytes))};

    char chunk[64 * 1024];
    const ssize_t received = ::recv(fd_, chunk, sizeof chunk, 0);
    if (received > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(received));
      continue;
    }
    if (received == 0) {
      if (buffer_.empty()) return {ReadStatus::closed, {}, {}};
      // A last line without its newline.
      return {ReadStatus::line, std::exchange(buffer_, {}), {}};
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return {ReadStatus::failed,
              {},
              fmt::format("cannot read the reply from {}: {}", path_, std::strerror(errno))};
    pollfd waits[2] = {{fd_, POLLIN, 0}, {interrupt_fd, POLLIN, 0}};
    const int ready = ::poll(waits, interrupt_fd >= 0 ? 2 : 1, poll_timeout(deadline));
    if (ready == 0) return {ReadStatus::timed_out, {}, {}};
    if (ready < 0 && errno != EINTR)
      return {ReadStatus::failed,
              {},
              fmt::format("cannot read the reply from {}: {}", path_, std::strerror(errno))};
    if (interrupt_fd >= 0 && (waits[1].revents & POLLIN) != 0)
      return {ReadStatus::interrupted, {}, {}};
  }
}

}  // namespace scgi::ctl
