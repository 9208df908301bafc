// A status reply to render and compare: the control protocol's test data,
// shared by the protocol, control-server and scgictl tests.
#pragma once

#include <vector>

#include "scgi/control_protocol.hpp"

namespace scgi::test {

// A pool "app" with two workers, for status.
inline std::vector<control::PoolStatus> two_worker_pool() {
  control::PoolStatus pool;
  pool.name = "app";
  pool.listen = "127.0.0.1:4000";
  pool.min_workers = pool.max_workers = pool.target_workers = 2;
  pool.queue_length = 3;
  pool.restarts = {{"exit", 1}};
  control::WorkerStatus ready;
  ready.index = 0;
  ready.pid = 4242;
  ready.state = "ready";
  ready.wanted = "up";
  ready.address = "127.0.0.1:5000";
  ready.uptime_seconds = 7'384;  // 2h03m04s
  ready.requests = 1234;
  ready.in_flight = 1;
  ready.rss_bytes = 47'396'044;  // 45.2MiB
  ready.cpu_seconds = 12.5;
  control::WorkerStatus backoff;
  backoff.index = 1;
  backoff.state = "backoff";
  backoff.wanted = "up";
  backoff.restarts = 3;
  backoff.last_exit = "exit status 1";
  pool.workers = {ready, backoff};
  return {pool};
}

}  // namespace scgi::test
