// A pool's request statistics, kept per thread so that the hot path never
// shares a cache line or a lock with another thread: each proxy thread writes
// only its own shard (relaxed atomics), and a scrape adds the shards up.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace scgi::proxy {

// Why a request never reached a backend (scgi_rejected_total's reason label).
enum class RejectReason { bad_request, too_large, queue_full, queue_timeout, client_closed };
inline constexpr std::array kRejectReasons{"bad_request", "too_large", "queue_full",
                                           "queue_timeout", "client_closed"};

// How an exchange ended (scgi_request_outcomes_total's outcome label, and the
// access log's outcome field): the first thing that went wrong, or served.
enum class Outcome {
  served,                // the backend answered (whatever its status)
  bad_request,           // the request broke the SCGI rules
  too_large,             // header over max_header, or body over max_body
  client_timeout,        // the client ran out of client_timeout / client_min_rate
  client_closed,         // the client left before its answer was complete
  queue_full,            // every backend busy and the queue full
  queue_timeout,         // no backend free within queue_timeout
  no_backend,            // no backend up
  connect_failed,        // every backend tried refused or timed out the connect
  backend_timeout,       // the backend was silent for request_timeout
  backend_reset,         // the backend's connection failed mid-exchange
  backend_closed_early,  // the backend closed without answering
  proxy_error,           // the proxy's own shortage: descriptors, memory, the spill disk
  shutdown,              // still running at the end of shutdown_timeout
};
inline constexpr std::array kOutcomes{
    "served",        "bad_request",          "too_large",   "client_timeout", "client_closed",
    "queue_full",    "queue_timeout",        "no_backend",  "connect_failed", "backend_timeout",
    "backend_reset", "backend_closed_early", "proxy_error", "shutdown"};

// Upper bounds in seconds, shared by the duration and queue-wait histograms.
inline constexpr std::array kLatencyBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0, 60.0};

// Status codes 100-599 are counted; anything else (never written by us) as 599.
inline constexpr int kFirstCode = 100;
inline constexpr int kLastCode = 599;

struct HistogramSnapshot {
  std::array<std::uint64_t, kLatencyBuckets.size()> buckets{};  // per bucket, not cumulative
  std::uint64_t count = 0;
  double sum_seconds = 0;
};

struct PoolStatsSnapshot {
  std::array<std::uint64_t, kLastCode - kFirstCode + 1> requests_by_code{};
  HistogramSnapshot request_duration;
  HistogramSnapshot queue_wait;
  std::array<std::uint64_t, kRejectReasons.size()> rejected{};
  std::array<std::uint64_t, kOutcomes.size()> outcomes{};
  std::uint64_t retries = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
};

class PoolStats {
 public:
  explicit PoolStats(std::size_t shard_count);

  void count_request(int status, std::chrono::nanoseconds duration);
  void observe_queue_wait(std::chrono::nanoseconds waited);
  void count_rejected(RejectReason reason);
  void count_outcome(Outcome outcome);
  void count_retry();
  void add_bytes(std::uint64_t in, std::uint64_t out);

  PoolStatsSnapshot snapshot() const;
  // An upgrade's: the previous image's counts, which every snapshot starts
  // from, so that no counter goes back. Before the pool is shared.
  void carry(const PoolStatsSnapshot& earlier);

 private:
  struct Histogram {
    std::array<std::atomic<std::uint64_t>, kLatencyBuckets.size() + 1> buckets{};  // last: +Inf
    std::atomic<std::uint64_t> sum_ns{0};
    void observe(std::chrono::nanoseconds value);
    void add_to(HistogramSnapshot& out) const;
  };
  struct alignas(64) Shard {
    std::array<std::atomic<std::uint64_t>, kLastCode - kFirstCode + 1> requests_by_code{};
    Histogram request_duration;
    Histogram queue_wait;
    std::array<std::atomic<std::uint64_t>, kRejectReasons.size()> rejected{};
    std::array<std::atomic<std::uint64_t>, kOutcomes.size()> outcomes{};
    std::atomic<std::uint64_t> retries{0};
    std::atomic<std::uint64_t> bytes_in{0};
    std::atomic<std::uint64_t> bytes_out{0};
  };

  Shard& mine();

  std::unique_ptr<Shard[]> shards_;
  std::size_t shard_count_;
  PoolStatsSnapshot carried_;
};

// Which shard the calling thread writes: proxy threads set theirs when they
// start (1..N); every other thread uses shard 0.
void set_current_shard(std::size_t shard);
std::size_t current_shard();

}  // namespace scgi::proxy
