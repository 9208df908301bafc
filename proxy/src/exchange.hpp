// One proxied SCGI exchange, from the accepted client connection to the close
// of both sockets: read the header under client_timeout, check it, take a slot
// on the least busy backend (or wait in the queue), connect, forward the header
// unchanged and stream the body, stream the response back unchanged, measure.
#pragma once

#include <asio/awaitable.hpp>

#include <functional>
#include <list>
#include <memory>

#include "scgi/runtime/endpoint.hpp"

namespace scgi::proxy {

class Pool;
class AccessLog;
class SpillSpace;

// The exchanges alive on one event-loop thread, so that a shutdown can end
// the ones still running at shutdown_timeout as exchanges (answered or closed,
// counted with the outcome `shutdown`) rather than dropping them with the
// loop. Used on its thread only; it outlives every exchange registered in it.
class LiveExchanges {
 public:
  using Entry = std::list<std::function<void()>>::iterator;

  // `end` cuts the exchange short: it is called at most once.
  Entry add(std::function<void()> end) { return ends_.insert(ends_.end(), std::move(end)); }
  void remove(Entry entry) { ends_.erase(entry); }
  void end_all();

 private:
  std::list<std::function<void()>> ends_;
};

// Runs the whole exchange on the client socket's executor (a single-threaded
// io_context) and never throws: every failure becomes a response, a metric
// and, where it helps, a log line. Responses too large for response_buffer
// are held in `spill_space` while the client is slow.
asio::awaitable<void> run_exchange(Socket client, std::shared_ptr<Pool> pool,
                                   const AccessLog& access_log, SpillSpace& spill_space,
                                   LiveExchanges& live);

}  // namespace scgi::proxy
