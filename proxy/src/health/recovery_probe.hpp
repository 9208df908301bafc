// Backend health, active half: a backend marked down is probed until it
// accepts a connection again, then marked up and its pool told.
//
// The passive half, which marks a backend down, is the rule in
// Backend::record_connect_failure / record_connect_success (backend.hpp):
// kFailuresToMarkDown connect failures in a row mark it down, and a success
// (of a request or of this probe) marks it up, each reporting the change once.
// It stays there because every exchange calls it, on Backend's own atomics.
// exchange.cpp reports a backend going down through Pool::Events::down, and
// the proxy server answers by spawning this probe on its control thread.
#pragma once

#include <asio/awaitable.hpp>

#include <atomic>
#include <memory>

#include "scgi/proxy/backend.hpp"
#include "scgi/proxy/pool.hpp"

namespace scgi::proxy {

// Runs on the executor it is spawned on (the control thread's). Probes each of
// the backend's endpoints, backing off from 100 ms to 5 s between rounds, and
// ends when one connects (the backend is up again), when the backend is
// removed or its pool gone, or once `stopping` is set. `stopping` must outlive
// the probe (the proxy server's flag: the server outlives its control thread's work).
asio::awaitable<void> probe_until_up(std::weak_ptr<Pool> pool, std::shared_ptr<Backend> backend,
                                     const std::atomic<bool>& stopping);

}  // namespace scgi::proxy
