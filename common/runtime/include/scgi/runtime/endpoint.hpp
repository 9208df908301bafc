// Turns configured addresses into socket endpoints. TCP and Unix sockets share
// one socket type (Asio's generic stream protocol), so the data path has no
// template or variant for the two.
#pragma once

#include <asio/generic/stream_protocol.hpp>

#include <string>
#include <vector>

#include "scgi/address.hpp"
#include "scgi/result.hpp"

namespace scgi {

using Endpoint = asio::generic::stream_protocol::endpoint;
using Socket = asio::generic::stream_protocol::socket;

// An IP literal or Unix path converts directly; a host name is resolved
// (blocking: only at start-up and reload) to every address it has.
Result<std::vector<Endpoint>> resolve_endpoints(const Address& address);

// Low latency for small SCGI exchanges: TCP_NODELAY. For TCP sockets only
// (the caller knows which it has; asking the socket would cost a system call).
void set_no_delay(Socket& socket);

// "127.0.0.1:4000", "[::1]:4000", "unix:/run/app.sock": for logs and labels.
std::string endpoint_to_string(const Endpoint& endpoint);

}  // namespace scgi
