// Is a worker ready? Its socket must accept a connection. A connect alone
// cannot tell in inherit mode, where the manager's own listening socket
// completes connections before the worker calls accept(); so the probe
// connects, closes its sending side at once (an SCGI connection without a
// byte, which servers treat as a health check) and waits for the worker to
// close back: that proves the worker accepted and read. Refused connects (the
// worker has not bound yet, in port and unix modes) are retried.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <vector>

#include "scgi/manager/restart_policy.hpp"
#include "scgi/proxy/endpoint.hpp"

namespace scgi::manager {

// True once the worker accepted on one of `endpoints`, false at `deadline`.
asio::awaitable<bool> wait_until_accepting(asio::any_io_executor executor,
                                           std::vector<proxy::Endpoint> endpoints,
                                           Clock::time_point deadline);

}  // namespace scgi::manager
