// Asks DNS for a name's A and AAAA records with c-ares, on one io_context's
// thread, without blocking it: c-ares' sockets are watched through Asio. Used
// by DNS discovery (dns_discoverer.hpp); one resolution at a time per resolver.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/address.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "discovery/discovery_stats.hpp"
#include "scgi/address.hpp"

struct ares_channeldata;

namespace scgi::proxy {

struct DnsAnswer {
  ResolutionResult result = ResolutionResult::error;
  std::vector<asio::ip::address> addresses;  // sorted, no duplicates; for `ok` only
  std::string error;                         // for `error`: what failed, for the log
};

class DnsResolver {
 public:
  // `server`: the DNS server to ask (an IP and port); nullopt: the system's
  // (/etc/resolv.conf). `try_timeout`: how long one try waits for an answer.
  // Throws std::runtime_error when c-ares cannot be set up.
  DnsResolver(asio::io_context& context, const std::optional<Address>& server,
              std::chrono::milliseconds try_timeout);
  ~DnsResolver();
  DnsResolver(const DnsResolver&) = delete;
  DnsResolver& operator=(const DnsResolver&) = delete;

  // Both families are asked at once; the answer is `ok` or `empty` only when
  // both were answered (a family may have none), else `error`, so that a lost
  // AAAA reply never passes for "this name has no IPv6 addresses". One
  // exception: a family the server refuses while it gives addresses of the
  // other counts as having none.
  asio::awaitable<DnsAnswer> resolve(const std::string& name);
  // Ends a resolution in progress at once, with an error ("cancelled").
  void cancel();

 private:
  // Waits until one of c-ares' sockets is ready or its next timeout is due,
  // then lets c-ares read, write and retry.
  asio::awaitable<void> wait_and_process();

  asio::io_context& context_;
  ares_channeldata* channel_ = nullptr;
  // The current wait; cancelling it wakes resolve(). Shared with the socket
  // watches' handlers, which may run after the wait they were for.
  std::shared_ptr<asio::steady_timer> wake_;
};

}  // namespace scgi::proxy
