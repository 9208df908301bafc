// How long an exchange may wait on its client once the header is in (for body
// bytes, or for room to write the response): no single wait longer than
// client_timeout, and all waits together no longer than client_timeout plus
// one second per client_min_rate bytes moved (Apache mod_reqtimeout's MinRate).
// A client that trickles its body or reads its response byte by byte thus runs
// out, while a slow backend, which the client does not wait on, costs nothing.
#pragma once

#include <chrono>
#include <cstdint>

namespace scgi::proxy {

class ClientBudget {
 public:
  using Clock = std::chrono::steady_clock;

  // `min_rate_bytes_per_second` 0: no bound on the total, only on each gap.
  ClientBudget(Clock::duration gap, std::uint64_t min_rate_bytes_per_second)
      : gap_(gap), min_rate_(min_rate_bytes_per_second) {}

  // Body bytes received from the client, or response bytes written to it.
  void add_bytes(std::uint64_t bytes) { bytes_moved_ += bytes; }
  // Of the bytes written, how many still sit in our socket's send queue: the
  // client has not taken them, so they earn nothing (a send buffer of a few
  // MiB would otherwise buy minutes).
  void set_unacknowledged(std::uint64_t bytes) { unacknowledged_ = bytes; }

  // A wait on the client begins or ends. Waits may overlap (a body still
  // arriving while the response goes out): the time counts once.
  void begin_wait(Clock::time_point now);
  void end_wait(Clock::time_point now);
  bool waiting() const { return waits_ > 0; }

  // When a wait that begins (or goes on) at `now` must end: a gap from now,
  // or sooner when the total runs out. `now` itself when nothing is left.
  Clock::time_point deadline(Clock::time_point now) const;
  // The total ran out (rather than one gap), for the log line.
  bool exhausted(Clock::time_point now) const;

  Clock::duration waited(Clock::time_point now) const;
  // client_timeout plus what the bytes moved have earned; max() without a rate.
  Clock::duration allowed() const;
  std::uint64_t bytes_moved() const {
    return bytes_moved_ > unacknowledged_ ? bytes_moved_ - unacknowledged_ : 0;
  }

 private:
  Clock::duration gap_;
  std::uint64_t min_rate_;
  std::uint64_t bytes_moved_ = 0;
  std::uint64_t unacknowledged_ = 0;
  Clock::duration waited_{0};  // in waits that have ended
  Clock::time_point since_;    // start of the waits going on, when waits_ > 0
  int waits_ = 0;
};

}  // namespace scgi::proxy
