// Who is behind a worker's socket, as the kernel says: the user of the process
// at the other end of a Unix connection (SO_PEERCRED), or of the listeners on
// a loopback TCP port (/proc/net/tcp and tcp6). The manager trusts a worker's
// socket only when it belongs to the pool's user.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>
#include <vector>

#include "scgi/result.hpp"

namespace scgi::manager {

// The uid of the process that listens at the other end of a connected Unix socket.
Result<uid_t> unix_peer_uid(int connected_fd);

// The uids of every listener that may receive a connection to 127.0.0.1:port:
// LISTEN rows of that port on 127.0.0.1 or 0.0.0.0 in `tcp`, and on :: or
// ::ffff:127.0.0.1 in `tcp6` (texts as in /proc/net/tcp and /proc/net/tcp6).
std::vector<uid_t> loopback_listener_uids(std::string_view tcp, std::string_view tcp6,
                                          std::uint16_t port);

// The same from this process's network namespace: asked of the kernel with
// sock_diag (listeners only), else read from /proc/net/tcp and tcp6.
Result<std::vector<uid_t>> loopback_listener_uids(std::uint16_t port);

}  // namespace scgi::manager
