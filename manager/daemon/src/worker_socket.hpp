// Where one worker accepts SCGI connections, prepared by the manager before
// the worker starts, per the pool's `socket` mode (docs/design.md, "Workers"):
//   inherit: the manager binds a listening socket and hands it over as fd 3;
//            it keeps its copy, so a replacement worker gets the same socket
//            (and the connections already waiting in its backlog);
//   port:    a free 127.0.0.1 port, put into {port} of command and env;
//   unix:    a socket path in the manager's runtime folder, put into {socket}.
//            The worker binds it, in a folder that may be its user's: the
//            manager works there only through descriptors (the folder's, and
//            the socket's once pinned), never by following the path.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "scgi/address.hpp"
#include "scgi/config.hpp"
#include "scgi/result.hpp"

namespace scgi::manager {

// unix mode: the socket a worker bound, held open (O_PATH) once it was found
// to be a socket of the pool's user. The manager connects through
// "/proc/self/fd/N", which names that very socket whatever the worker does to
// its path later (a symlink to another socket in its place leads nowhere).
class PinnedSocket {
 public:
  explicit PinnedSocket(int fd) : fd_(fd) {}
  ~PinnedSocket();
  PinnedSocket(const PinnedSocket&) = delete;
  PinnedSocket& operator=(const PinnedSocket&) = delete;
  // What the balancer and the readiness probe connect to.
  Address address() const;
  int fd() const { return fd_; }  // for the next image of an upgrade

 private:
  int fd_;
};

// One look at a unix-mode worker's socket path.
struct PinAttempt {
  enum class Outcome { pinned, absent, refused };
  Outcome outcome;
  std::shared_ptr<PinnedSocket> socket;  // when pinned
  std::string refusal;                   // when refused: what is there instead
};

class WorkerSocket {
 public:
  // `runtime_dir` holds Unix sockets (unix and inherit modes use none for TCP).
  // `instance` tells apart the sockets of a worker and its replacement, which
  // run side by side for a moment while one takes over from the other.
  static Result<WorkerSocket> prepare(const PoolConfig& pool, std::uint32_t worker_index,
                                      const std::string& runtime_dir, std::uint32_t instance = 0);
  // An upgrade's: the socket the previous image prepared, from its parts
  // (descriptors already adopted).
  static WorkerSocket adopt(SocketMode mode, Address address, int listen_fd, int folder_fd) {
    return WorkerSocket(mode, std::move(address), listen_fd, folder_fd);
  }
  WorkerSocket(WorkerSocket&& other) noexcept;
  WorkerSocket& operator=(WorkerSocket&& other) noexcept;
  WorkerSocket(const WorkerSocket&) = delete;
  WorkerSocket& operator=(const WorkerSocket&) = delete;
  ~WorkerSocket();

  SocketMode mode() const { return mode_; }
  // What the balancer connects to.
  const Address& address() const { return address_; }
  // inherit: the listening socket to pass as fd 3; -1 otherwise.
  int listen_fd() const { return listen_fd_; }
  // The text {port} or {socket} stands for ("" in inherit mode).
  std::string placeholder_value() const;
  // unix: the pool's socket folder, opened without following a link; -1 otherwise.
  int folder_fd() const { return folder_fd_; }
  // unix: looks at the socket path without following a link: absent while the
  // worker has not bound it; pinned when it is a socket owned by `owner`;
  // refused when it is anything else (a symlink, a file, another user's socket).
  PinAttempt pin(uid_t owner) const;

 private:
  WorkerSocket(SocketMode mode, Address address, int listen_fd, int folder_fd = -1)
      : mode_(mode), address_(std::move(address)), listen_fd_(listen_fd), folder_fd_(folder_fd) {}
  std::string file_name() const;
  void release();

  SocketMode mode_;
  Address address_;
  int listen_fd_ = -1;
  int folder_fd_ = -1;
};

}  // namespace scgi::manager
