// Is a worker ready? Its socket must accept a connection. A connect alone
// cannot tell in inherit mode, where the manager's own listening socket
// completes connections before the worker calls accept(); so the probe
// connects, closes its sending side at once (an SCGI connection without a
// byte, which servers treat as a health check) and waits for the worker to
// close back: that proves the worker accepted and read. Refused connects (the
// worker has not bound yet, in port and unix modes) are retried.
//
// Where the worker binds its socket itself, what answers may not be the
// worker: each round asks the caller where to connect (a unix socket is
// pinned first, see WorkerSocket::pin), and a connection that got through is
// verified (its listener must be the pool's user) before it counts.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "restart_policy.hpp"
#include "scgi/runtime/endpoint.hpp"

namespace scgi::manager {

// Where one round connects: endpoints, none yet (try again later), or a
// refusal (what is there is not the worker's: the start failed).
struct ProbeTarget {
  std::vector<Endpoint> endpoints;
  std::optional<std::string> refusal;
};

struct ProbeChecks {
  std::function<ProbeTarget()> locate;
  // Called on a connection that got through: nullopt when its listener is the
  // worker's, else why not. May be empty (nothing to verify).
  std::function<std::optional<std::string>(int connected_fd)> verify;
};

struct Readiness {
  enum class Outcome { ready, timed_out, refused };
  Outcome outcome;
  std::string refusal;  // when refused
};

// Ready once the worker accepted on one of the located endpoints; timed_out
// at `deadline`; refused as soon as locate or verify refuses.
asio::awaitable<Readiness> wait_until_ready(asio::any_io_executor executor, ProbeChecks checks,
                                            Clock::time_point deadline);

}  // namespace scgi::manager
