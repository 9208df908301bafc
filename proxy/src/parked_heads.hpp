// Connections whose request head was still arriving when an upgrade paused
// the balancer: taken out of their exchanges rather than waited for (a client
// that sends nothing must not hold the switch up), kept here until the next
// image takes them over, or until this one resumes them (the upgrade failed).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "scgi/runtime/endpoint.hpp"

namespace scgi::proxy {

class Pool;

// How far an exchange got with its request head: where a resumed one goes on from.
struct HeadSoFar {
  using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC: an exec does not reset it
  std::string received;                     // the head's bytes read so far
  Clock::time_point accepted_at;
  Clock::time_point deadline;  // for the whole head, set once at the accept
};

struct ParkedHead {
  Socket client;
  std::shared_ptr<Pool> pool;
  HeadSoFar head;
};

// Filled by the exchanges on their threads, emptied on the control thread.
class ParkedHeads {
 public:
  void put(ParkedHead parked) {
    std::lock_guard lock(mutex_);
    parked_.push_back(std::move(parked));
  }
  std::vector<ParkedHead> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(parked_, {});
  }
  // Calls `visit` with each one, left in place.
  template <class F>
  void visit(F&& visit) {
    std::lock_guard lock(mutex_);
    for (ParkedHead& parked : parked_)
      visit(parked);
  }

 private:
  std::mutex mutex_;
  std::vector<ParkedHead> parked_;
};

}  // namespace scgi::proxy
