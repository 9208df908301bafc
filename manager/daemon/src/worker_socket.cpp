#include "worker_socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace scgi::manager {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

// Binds 127.0.0.1:0 and returns the socket and the port the kernel chose.
int bind_loopback(std::uint16_t& port, std::string& error) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "cannot create a socket: " + errno_text();
    return -1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    error = "cannot bind a free 127.0.0.1 port: " + errno_text();
    ::close(fd);
    return -1;
  }
  port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

Result<WorkerSocket> WorkerSocket::prepare(const PoolConfig& pool, std::uint32_t worker_index,
                                           const std::string& runtime_dir, std::uint32_t instance) {
  using R = Result<WorkerSocket>;
  std::string error;
  switch (pool.socket) {
    case SocketMode::inherit: {
      std::uint16_t port = 0;
      const int fd = bind_loopback(port, error);
      if (fd < 0) return R::fail(error);
      // Listening before the worker starts: connections wait in the backlog
      // until it accepts, and the balancer's readiness probe sees it accept.
      if (::listen(fd, 1024) != 0) {
        error = "cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + errno_text();
        ::close(fd);
        return R::fail(error);
      }
      return R::ok(WorkerSocket(SocketMode::inherit,
                                Address{Address::Kind::tcp, "127.0.0.1", port, {}}, fd));
    }
    case SocketMode::port: {
      // The worker binds it itself: find a free one, then let it go. Another
      // process could take it in between; the worker then fails to start and
      // is retried with a fresh port.
      std::uint16_t port = 0;
      const int fd = bind_loopback(port, error);
      if (fd < 0) return R::fail(error);
      ::close(fd);
      return R::ok(
          WorkerSocket(SocketMode::port, Address{Address::Kind::tcp, "127.0.0.1", port, {}}, -1));
    }
    case SocketMode::unix_socket: {
      // One folder per pool, so that a pool whose workers run as another user
      // can be given its own (spawn_worker hands it over). The runtime folder
      // is the manager's: the worker cannot put a link in place of its folder.
      const std::string folder = runtime_dir + "/" + pool.name;
      if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST)
        return R::fail("cannot create the socket folder " + folder + ": " + std::strerror(errno));
      const std::string name = pool.name + "-" + std::to_string(worker_index) +
                               (instance == 0 ? "" : "-" + std::to_string(instance)) + ".sock";
      const std::string path = folder + "/" + name;
      if (path.size() > kMaxUnixPathLength)
        return R::fail("worker socket path " + path + " is longer than " +
                       std::to_string(kMaxUnixPathLength) + " bytes: use a shorter runtime folder");
      const int folder_fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (folder_fd < 0)
        return R::fail("cannot open the socket folder " + folder + ": " + std::strerror(errno));
      // A stale socket of an earlier worker in this slot (or whatever it left).
      ::unlinkat(folder_fd, name.c_str(), 0);
      return R::ok(WorkerSocket(SocketMode::unix_socket,
                                Address{Address::Kind::unix_socket, {}, 0, path}, -1, folder_fd));
    }
  }
  return R::fail("unknown socket mode");
}

WorkerSocket::WorkerSocket(WorkerSocket&& other) noexcept
    : mode_(other.mode_),
      address_(std::move(other.address_)),
      listen_fd_(std::exchange(other.listen_fd_, -1)),
      folder_fd_(std::exchange(other.folder_fd_, -1)) {
  other.address_.path.clear();  // the moved-from object must not unlink the path
}

WorkerSocket& WorkerSocket::operator=(WorkerSocket&& other) noexcept {
  if (this != &other) {
    release();
    mode_ = other.mode_;
    address_ = std::move(other.address_);
    listen_fd_ = std::exchange(other.listen_fd_, -1);
    folder_fd_ = std::exchange(other.folder_fd_, -1);
    other.address_.path.clear();
  }
  return *this;
}

WorkerSocket::~WorkerSocket() {
  release();
}

void WorkerSocket::release() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
  if (folder_fd_ >= 0) {
    // Relative to the folder and without following: only this name goes.
    if (!address_.path.empty()) ::unlinkat(folder_fd_, file_name().c_str(), 0);
    ::close(folder_fd_);
  }
  folder_fd_ = -1;
}

std::string WorkerSocket::file_name() const {
  return address_.path.substr(address_.path.rfind('/') + 1);
}

PinAttempt WorkerSocket::pin(uid_t owner) const {
  using Outcome = PinAttempt::Outcome;
  if (folder_fd_ < 0) return {Outcome::refused, nullptr, "not a unix-mode socket"};
  const std::string name = file_name();
  // O_PATH with O_NOFOLLOW opens a symlink itself, which fstat then shows.
  const int fd = ::openat(folder_fd_, name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return {Outcome::absent, nullptr, {}};
    return {Outcome::refused, nullptr, "cannot open " + address_.path + ": " + errno_text()};
  }
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const std::string error = "cannot stat " + address_.path + ": " + errno_text();
    ::close(fd);
    return {Outcome::refused, nullptr, error};
  }
  if (!S_ISSOCK(info.st_mode)) {
    ::close(fd);
    const char* kind = S_ISLNK(info.st_mode)   ? "a symbolic link"
                       : S_ISDIR(info.st_mode) ? "a folder"
                                               : "a file";
    return {Outcome::refused, nullptr,
            address_.path + " is " + kind +
                ", not the worker's socket: the manager does not connect through it"};
  }
  if (info.st_uid != owner) {
    ::close(fd);
    return {Outcome::refused, nullptr,
            address_.path + " is a socket of uid " + std::to_string(info.st_uid) +
                ", not of the pool's user (uid " + std::to_string(owner) +
                "): the manager does not connect to it"};
  }
  return {Outcome::pinned, std::make_shared<PinnedSocket>(fd), {}};
}

PinnedSocket::~PinnedSocket() {
  ::close(fd_);
}

Address PinnedSocket::address() const {
  return Address{Address::Kind::unix_socket, {}, 0, "/proc/self/fd/" + std::to_string(fd_)};
}

std::string WorkerSocket::placeholder_value() const {
  switch (mode_) {
    case SocketMode::port:
      return std::to_string(address_.port);
    case SocketMode::unix_socket:
      return address_.path;
    case SocketMode::inherit:
      break;
  }
  return {};
}

}  // namespace scgi::manager
