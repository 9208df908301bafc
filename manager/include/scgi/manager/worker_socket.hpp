// Where one worker accepts SCGI connections, prepared by the manager before
// the worker starts, per the pool's `socket` mode (DESIGN.md):
//   inherit: the manager binds a listening socket and hands it over as fd 3;
//            it keeps its copy, so a replacement worker gets the same socket
//            (and the connections already waiting in its backlog);
//   port:    a free 127.0.0.1 port, put into {port} of command and env;
//   unix:    a socket path in the manager's runtime folder, put into {socket}.
#pragma once

#include <string>

#include "scgi/address.hpp"
#include "scgi/config.hpp"
#include "scgi/result.hpp"

namespace scgi::manager {

class WorkerSocket {
 public:
  // `runtime_dir` holds Unix sockets (unix and inherit modes use none for TCP).
  // `instance` tells apart the sockets of a worker and its replacement, which
  // run side by side for a moment while one takes over from the other.
  static Result<WorkerSocket> prepare(const PoolConfig& pool, std::uint32_t worker_index,
                                      const std::string& runtime_dir, std::uint32_t instance = 0);
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

 private:
  WorkerSocket(SocketMode mode, Address address, int listen_fd)
      : mode_(mode), address_(std::move(address)), listen_fd_(listen_fd) {}
  void release();

  SocketMode mode_;
  Address address_;
  int listen_fd_ = -1;
};

}  // namespace scgi::manager
