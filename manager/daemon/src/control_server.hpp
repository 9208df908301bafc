// The manager's control socket (docs/control-protocol.md): a Unix socket that
// scgictl talks to, one JSON object per line each way. The server owns the
// socket file and its permissions, checks who connects (SO_PEERCRED), frames
// and validates requests, and hands the valid ones to a ControlHandler. Each
// connection is one coroutine on the control io_context, so a slow or silent
// client only ever holds up itself.
#pragma once

#include <asio/io_context.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "control_handler.hpp"
#include "scgi/runtime/unix_socket_file.hpp"

namespace scgi::manager {

// Every per-peer resource has a cap the peer cannot raise (docs/control-protocol.md).
// Root and the manager's own user ("owners") are counted apart from everyone
// else, so that no member of control_group can lock them out.
struct ControlServerLimits {
  // Connections served at once, for the owners together and for all other
  // users together; one more gets an error reply and is closed.
  std::size_t max_connections = 128;
  // Connections of one user that is not an owner (a control_group member).
  std::size_t max_connections_per_user = 8;
  // A connection that sends no complete request line for this long, while
  // nothing is running or streaming for it, gets an error reply and is closed.
  std::chrono::milliseconds idle_timeout{10'000};
  // A reply the client does not read within this time ends its connection.
  std::chrono::milliseconds write_timeout{30'000};
  // `logs` with follow: a client this many bytes behind the stream is dropped
  // with a final error line, so that memory never grows without bound.
  std::size_t max_log_backlog_bytes = 1024 * 1024;
  // The manager never connects to its own control socket: a connection from
  // its own process came by a path that led back here (a worker's socket
  // replaced by a symlink) and is refused. Tests whose clients run in the
  // server's process turn this off.
  bool refuse_own_process = true;
};

class ControlServer {
 public:
  // Everything runs on `context`, which one thread runs (the manager's control
  // thread), as does the handler: no strand, no locks.
  // `control_group` "" = only root and the manager's own user may connect.
  ControlServer(asio::io_context& context, std::string path, std::string control_group,
                ControlHandler& handler, ControlServerLimits limits = {});
  ~ControlServer();  // close()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Creates the socket's folder if missing (0755), replaces a stale socket
  // (one nobody accepts on), binds (born 0600; 0660 and owned by control_group
  // when set), listens and starts accepting on the context. False with `error`
  // set to a message a person can act on; nothing is left behind then.
  bool open(std::string& error);
  // An upgrade's: serves on the listening socket `fd` the previous image
  // opened at the same path (connections that came meanwhile wait in it).
  bool adopt(int fd, std::string& error);
  // The listening socket, for the next image of an upgrade; -1 when closed.
  int listening_fd() const;
  // Stops accepting, ends every connection (and log stream) and removes the
  // socket file if it is still the one open() created. Call it on the control
  // thread (or with the context stopped), before the handler goes away.
  void close();

  const std::string& path() const { return path_; }
  std::size_t connection_count() const;

  struct State;  // shared with the connection coroutines (control_server.cpp)

 private:
  asio::io_context& context_;
  std::string path_;
  std::string control_group_;
  std::shared_ptr<State> state_;
  // The socket file open() created, to remove only that one on close().
  std::optional<UnixSocketFileId> socket_file_;
};

}  // namespace scgi::manager
