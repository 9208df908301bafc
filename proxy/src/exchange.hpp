// One proxied SCGI exchange, from the accepted client connection to the close
// of both sockets: read the header under client_timeout, check it, take a slot
// on the least busy backend (or wait in the queue), connect, forward the header
// unchanged and stream the body, stream the response back unchanged, measure.
#pragma once

#include <asio/awaitable.hpp>

#include <functional>
#include <list>
#include <memory>

#include "parked_heads.hpp"
#include "scgi/runtime/endpoint.hpp"

namespace scgi::proxy {

class Pool;
class AccessLog;
class SpillSpace;

// The exchanges alive on one event-loop thread, so that a shutdown can end
// the ones still running at shutdown_timeout as exchanges (answered or closed,
// counted with the outcome `shutdown`) rather than dropping them with the
// loop, and an upgrade can take out those still reading their request head.
// Used on its thread only; it outlives every exchange registered in it.
class LiveExchanges {
 public:
  struct Controls {
    std::function<void()> end;  // cuts the exchange short: called at most once
    // An exchange still reading its head puts its connection in `shelf` and
    // ends, uncounted; any other carries on.
    std::function<void(ParkedHeads& shelf)> park;
  };
  using Entry = std::list<Controls>::iterator;

  Entry add(Controls controls) { return entries_.insert(entries_.end(), std::move(controls)); }
  void remove(Entry entry) { entries_.erase(entry); }
  void end_all();
  void park_heads(ParkedHeads& shelf);

 private:
  std::list<Controls> entries_;
};

// Runs the whole exchange on the client socket's executor (a single-threaded
// io_context) and never throws: every failure becomes a response, a metric
// and, where it helps, a log line. Responses too large for response_buffer
// are held in `spill_space` while the client is slow. With `resumed`, the
// exchange goes on from a head begun earlier (parked_heads.hpp), as if its
// bytes had just been read.
asio::awaitable<void> run_exchange(Socket client, std::shared_ptr<Pool> pool,
                                   const AccessLog& access_log, SpillSpace& spill_space,
                                   LiveExchanges& live, std::unique_ptr<HeadSoFar> resumed);

}  // namespace scgi::proxy
