// One place a pool can send requests to: its address, how many requests it
// takes at once, how many it has, and whether it may get more. Shared by every
// proxy thread; all of its mutable state is atomic.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scgi/runtime/endpoint.hpp"

namespace scgi::proxy {

enum class BackendErrorKind { connect, reset, timeout };
inline constexpr std::size_t kBackendErrorKinds = 3;

// The error counts of one metrics label that outlives its backends (a
// supervised worker's slot): every backend with the label counts into them,
// for as long as it lives, so errors of a worker already taken out of its
// pool still count (see backend_series.hpp).
struct LabelErrors {
  std::array<std::atomic<std::uint64_t>, kBackendErrorKinds> counts{};
};

class Backend {
 public:
  // Whether its owner wants requests routed to it (the manager, or the pool's
  // configuration). Health is separate: a ready backend may be down.
  enum class Membership { ready, draining, removed };

  // `label` names it in metrics; empty = its name (see backend_series.hpp).
  // `label_errors`: the label's shared counters, for a label that is not its name.
  Backend(std::string name, std::vector<Endpoint> endpoints, std::uint32_t concurrency,
          std::string label = {}, std::shared_ptr<LabelErrors> label_errors = nullptr);
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  const std::string& name() const { return name_; }  // the address, as configured
  const std::string& label() const { return label_; }
  const std::vector<Endpoint>& endpoints() const { return endpoints_; }

  std::uint32_t in_flight() const { return in_flight_.load(std::memory_order_seq_cst); }
  std::uint32_t concurrency() const { return concurrency_.load(std::memory_order_relaxed); }
  void set_concurrency(std::uint32_t concurrency);

  // Sequentially consistent: the drain handshake in Pool::try_pick relies on it.
  Membership membership() const { return membership_.load(std::memory_order_seq_cst); }
  void set_membership(Membership membership) {
    membership_.store(membership, std::memory_order_seq_cst);
  }
  bool up() const { return up_.load(std::memory_order_acquire); }
  // Ready, undrained and healthy: the balancer may choose it.
  bool routable() const { return membership() == Membership::ready && up(); }

  // Takes one of its slots if it has one free; the caller then owns the slot.
  bool try_reserve();
  // Gives a slot back; returns the in-flight count left.
  std::uint32_t release();

  // Passive health: consecutive connect failures mark it down; a success (of a
  // request or of a probe) marks it up. Each returns true when `up` changed.
  bool record_connect_failure();
  bool record_connect_success();
  // An upgrade's: down, as the previous image had found it (its errors
  // counted there already); true when `up` changed.
  bool mark_down() {
    consecutive_failures_.store(kFailuresToMarkDown, std::memory_order_relaxed);
    return up_.exchange(false, std::memory_order_acq_rel);
  }
  // Errors by kind, for scgi_backend_errors_total.
  void count_error(BackendErrorKind kind);
  std::uint64_t errors(BackendErrorKind kind) const;

  // Requests that reached it (their bytes were sent): the manager recycles on this.
  void count_request() { requests_.fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  // An upgrade's: the requests its process had served before.
  void carry_requests(std::uint64_t earlier) {
    requests_.fetch_add(earlier, std::memory_order_relaxed);
  }

  // A connect failure this many times in a row marks a backend down.
  static constexpr std::uint32_t kFailuresToMarkDown = 2;

 private:
  const std::string name_;
  const std::string label_;
  const std::vector<Endpoint> endpoints_;
  std::atomic<std::uint32_t> concurrency_;
  std::atomic<std::uint32_t> in_flight_{0};
  std::atomic<Membership> membership_{Membership::ready};
  std::atomic<bool> up_{true};
  std::atomic<std::uint32_t> consecutive_failures_{0};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> errors_[kBackendErrorKinds] = {};
  const std::shared_ptr<LabelErrors> label_errors_;
};

}  // namespace scgi::proxy
