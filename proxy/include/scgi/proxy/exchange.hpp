// One proxied SCGI exchange, from the accepted client connection to the close
// of both sockets: read the header under client_timeout, check it, take a slot
// on the least busy backend (or wait in the queue), connect, forward the header
// unchanged and stream the body, stream the response back unchanged, measure.
#pragma once

#include <asio/awaitable.hpp>

#include <memory>

#include "scgi/proxy/endpoint.hpp"

namespace scgi::proxy {

class Pool;
class AccessLog;
class SpillSpace;

// Runs the whole exchange on the client socket's executor (a single-threaded
// io_context) and never throws: every failure becomes a response, a metric
// and, where it helps, a log line. Responses too large for response_buffer
// are held in `spill_space` while the client is slow.
asio::awaitable<void> run_exchange(Socket client, std::shared_ptr<Pool> pool,
                                   const AccessLog& access_log, SpillSpace& spill_space);

}  // namespace scgi::proxy
