// A pool's front door: one listening socket (TCP or Unix), accepted on by every
// proxy thread, each running the exchanges it accepts. Whichever thread is
// free first takes the next connection, and an exchange never changes thread.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "scgi/address.hpp"
#include "scgi/runtime/endpoint.hpp"
#include "scgi/runtime/unix_socket_file.hpp"

namespace scgi::proxy {

class Listener {
 public:
  // Called on the accepting thread with each new connection.
  using Handler = std::function<void(Socket)>;

  // Binds and listens at once, so errors (address in use, no permission)
  // surface at start-up or reload. A Unix socket file left by a dead process
  // is replaced; one that a live process accepts on is an error. A Unix
  // socket gets `access` before anyone can connect (unix_socket_file.hpp).
  static std::unique_ptr<Listener> open(const Address& address, const UnixSocketAccess& access,
                                        std::string& error);
  // An upgrade's: takes over the listening socket `fd` that the previous
  // image bound at `address` (its Unix socket file stays where it is).
  static std::unique_ptr<Listener> adopt(const Address& address, int fd, std::string& error);
  ~Listener();

  // Starts one accept loop per context; each connection goes to `handler`.
  void start(const std::vector<asio::io_context*>& contexts, Handler handler);
  // Stops accepting and closes the socket (and removes its Unix socket file,
  // if it is still the one this listener bound).
  void close();
  // Stops accepting but keeps the socket open: connections wait in its
  // backlog (an upgrade). Completes once no loop can accept any more.
  asio::awaitable<void> pause(asio::any_io_executor control);
  // The listening socket, for the next image of an upgrade.
  int fd() const { return fd_; }

  const Address& address() const { return address_; }
  bool same_address(const Address& other) const { return address_ == other; }
  // A reload may change a Unix socket's mode and group in place.
  bool set_access(const UnixSocketAccess& access, std::string& error);
  // Whether set_access() finds what it needs (its group): checked before a
  // reload changes anything.
  bool can_set_access(const UnixSocketAccess& access, std::string& error) const;

 private:
  Listener(Address address, Endpoint endpoint, int fd, std::optional<UnixSocketFileId> file)
      : address_(std::move(address)), endpoint_(std::move(endpoint)), fd_(fd), file_(file) {}

  struct Loop;
  struct Shortage;
  // Runs on the loop's own thread: closes its acceptor, or just passes by.
  static asio::awaitable<void> visit_loop(std::shared_ptr<Loop> loop, bool close);
  Address address_;
  Endpoint endpoint_;
  int fd_;  // the listening socket; each loop accepts on its own dup of it
  std::optional<UnixSocketFileId> file_;  // a Unix socket's file, as bound
  std::vector<std::shared_ptr<Loop>> loops_;
  std::shared_ptr<Shortage> shortage_;
  std::atomic<bool> closed_{false};
};

}  // namespace scgi::proxy
