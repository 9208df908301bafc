#include "scgi/manager/worker_socket.hpp"

#include <arpa/inet.h>
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
      // can be given its own (spawn_worker hands it over).
      const std::string folder = runtime_dir + "/" + pool.name;
      if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST)
        return R::fail("cannot create the socket folder " + folder + ": " + std::strerror(errno));
      const std::string path = folder + "/" + pool.name + "-" + std::to_string(worker_index) +
                               (instance == 0 ? "" : "-" + std::to_string(instance)) + ".sock";
      if (path.size() > kMaxUnixPathLength)
        return R::fail("worker socket path " + path + " is longer than " +
                       std::to_string(kMaxUnixPathLength) + " bytes: use a shorter runtime folder");
      ::unlink(path.c_str());  // a stale socket of an earlier worker in this slot
      return R::ok(WorkerSocket(SocketMode::unix_socket,
                                Address{Address::Kind::unix_socket, {}, 0, path}, -1));
    }
  }
  return R::fail("unknown socket mode");
}

WorkerSocket::WorkerSocket(WorkerSocket&& other) noexcept
    : mode_(other.mode_),
      address_(std::move(other.address_)),
      listen_fd_(std::exchange(other.listen_fd_, -1)) {
  other.address_.path.clear();  // the moved-from object must not unlink the path
}

WorkerSocket& WorkerSocket::operator=(WorkerSocket&& other) noexcept {
  if (this != &other) {
    release();
    mode_ = other.mode_;
    address_ = std::move(other.address_);
    listen_fd_ = std::exchange(other.listen_fd_, -1);
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
  if (mode_ == SocketMode::unix_socket && !address_.path.empty()) ::unlink(address_.path.c_str());
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
