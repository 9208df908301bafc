// One worker of a pool as its supervisor keeps it: its slot (state, wanted,
// role: changed only through the state table), its process, socket and
// backend, its failure and recycling bookkeeping. Internal to
// PoolSupervisor, shared by its source files.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pool_supervisor.hpp"
#include "process_stats.hpp"
#include "scgi/runtime/endpoint.hpp"

namespace scgi::manager {

struct PoolSupervisor::Worker {
  Worker(std::uint32_t index, std::uint32_t instance, RestartBackoff limits)
      : index(index), instance(instance), backoff(limits) {}

  const std::uint32_t index;     // SCGI_WORKER: its slot in the pool
  const std::uint32_t instance;  // tells apart a worker and its replacement
  // Its state, what is wanted of it, its part in the slot and its drain mark:
  // set when the worker is made (a successor starts with its slot's mark),
  // then changed only by the state table, through feed().
  WorkerSlot slot;
  bool successor() const { return slot.role == SlotRole::successor; }
  bool retiring() const { return slot.role == SlotRole::retiring; }
  bool wanted_up() const { return slot.wanted == Wanted::up; }
  std::optional<WorkerSocket> socket;
  std::shared_ptr<PinnedSocket> pinned;     // unix mode: the socket it bound, once checked
  std::vector<Endpoint> endpoints;          // where it accepts, once probed ready
  std::shared_ptr<proxy::Backend> backend;  // while routed
  pid_t pid = 0;
  Clock::time_point started_at{};
  Clock::time_point ready_since{};
  bool stayed_up_counted = false;
  Backoff backoff;
  Milliseconds restart_delay{0};
  RestartReason failure_reason = RestartReason::exit;
  std::uint32_t restarts = 0;
  std::string last_exit;
  RecycleLimits limits;  // of this process
  Clock::time_point recycle_retry_at{};
  ProcessUsage usage{};
  // One deadline per worker; `epoch` changes with every state change, so an
  // alarm or probe that reports for an older state is ignored.
  std::unique_ptr<Alarm> deadline;
  Clock::time_point deadline_at{};  // when `deadline` fires (an upgrade hands it on)
  std::uint64_t epoch = 0;
  bool feeding = false;
  std::vector<WorkerEvent> pending;
};

}  // namespace scgi::manager
