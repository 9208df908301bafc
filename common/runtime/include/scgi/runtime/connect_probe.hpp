// A connect probe: whether an endpoint accepts a connection within a time
// limit. Used before a discovered address joins a pool, and to find a backend
// marked down up again.
#pragma once

#include <asio/awaitable.hpp>

#include <chrono>

#include "scgi/runtime/endpoint.hpp"

namespace scgi {

// Connects on the calling coroutine's executor and closes the connection at once.
asio::awaitable<bool> connect_probe(const Endpoint& endpoint, std::chrono::milliseconds timeout);

}  // namespace scgi
