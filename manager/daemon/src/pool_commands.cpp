// scgictl's commands for one pool: start, stop, rolling restart, scale, drain.
// Each feeds the workers' state table (worker_state.hpp) and, where it waits
// (a rolling restart, drain --wait), waits on the supervisor's Notifier for
// the state it needs, within a bound.
#include <fmt/format.h>

#include <algorithm>

#include "pool_supervisor.hpp"
#include "pool_worker.hpp"
#include "scgi/log.hpp"

namespace scgi::manager {

Result<std::string> PoolSupervisor::start_workers(std::optional<std::uint32_t> index) {
  int started = 0;
  for (const WorkerPtr& worker : std::list<WorkerPtr>(workers_)) {
    if ((index && worker->index != *index) || worker->retiring()) continue;
    if (worker->wanted_up()) continue;
    feed(worker, WorkerEvent::start);
    ++started;
  }
  if (started == 0) return Result<std::string>::ok("nothing to start: already wanted up");
  return Result<std::string>::ok(fmt::format("starting {} worker(s)", started));
}

Result<std::string> PoolSupervisor::stop_workers(std::optional<std::uint32_t> index) {
  int stopped = 0;
  for (const WorkerPtr& worker : std::list<WorkerPtr>(workers_)) {
    if ((index && worker->index != *index) || worker->retiring()) continue;
    if (!worker->wanted_up()) continue;
    feed(worker, WorkerEvent::halt);
    ++stopped;
  }
  if (stopped == 0) return Result<std::string>::ok("nothing to stop: already stopped");
  return Result<std::string>::ok(
      fmt::format("stopping {} worker(s); they stay stopped until started", stopped));
}

asio::awaitable<Result<std::string>> PoolSupervisor::restart_workers(
    std::optional<std::uint32_t> index, std::function<void(const std::string&)> progress) {
  using R = Result<std::string>;
  const auto report = [&](std::string step) {
    log_info("pool {}: {}", config_.name, step);
    if (progress) progress(step);
  };
  if (restarting_)
    co_return R::fail(
        fmt::format("a restart of pool {} is in progress: wait for it to finish "
                    "(scgictl status {} shows it)",
                    config_.name, config_.name));
  std::vector<std::uint32_t> indexes;
  for (const WorkerPtr& worker : workers_)
    if ((!index || worker->index == *index) && worker->slot.role == SlotRole::serving &&
        worker->wanted_up())
      indexes.push_back(worker->index);
  if (indexes.empty())
    co_return R::fail(index
                          ? fmt::format("{}[{}] is not running: start it with scgictl start {}:{}",
                                        config_.name, *index, config_.name, *index)
                          : fmt::format("pool {} has no running worker: start it with scgictl "
                                        "start {}",
                                        config_.name, config_.name));
  std::weak_ptr<bool> alive = alive_;  // the pool may be removed by a reload meanwhile
  restarting_ = true;
  // Cleared on every way out, unless the pool itself is gone.
  struct Clear {
    std::weak_ptr<bool> alive;
    PoolSupervisor& pool;
    ~Clear() {
      if (!alive.lock()) return;
      pool.restarting_ = false;
      pool.changed_.notify();  // a reload's rolling restart may be waiting for this one
    }
  } clear{alive, *this};
  // Waits until `done()` or `limit`; false when the pool went away meanwhile.
  auto wait_until = [&](auto done, Clock::time_point limit) -> asio::awaitable<bool> {
    co_await changed_.wait_until(done, limit);
    co_return static_cast<bool>(alive.lock());
  };
  int done = 0;
  // One worker at a time: its replacement is ready before it drains, and it
  // is gone before the next one starts.
  for (const std::uint32_t i : indexes) {
    const auto limit =
        clock_.now() + config_.ready_timeout + config_.stop_timeout * 2 + std::chrono::seconds(1);
    // A recycle in progress finishes first.
    if (!co_await wait_until([&] { return !replacing(); }, limit))
      co_return R::fail("the pool was removed by a reload");
    WorkerPtr old;
    for (const WorkerPtr& worker : find_by_index(i))
      if (worker->slot.role == SlotRole::serving && worker->wanted_up()) old = worker;
    if (!old || stopping_) continue;
    if (old->slot.state != WorkerState::ready) {
      // Not serving: start it over now (a start in progress, or a backoff cut short).
      report(fmt::format("{}[{}] was {}: starting it over", config_.name, i,
                         manager::name(old->slot.state)));
      feed(old,
           old->slot.state == WorkerState::backoff ? WorkerEvent::backoff_done : WorkerEvent::stop);
      ++done;
      continue;
    }
    const pid_t old_pid = old->pid;
    replace(old, RestartReason::recycle, "restarting by request");
    WorkerPtr successor;
    for (const WorkerPtr& worker : find_by_index(i))
      if (worker->successor()) successor = worker;
    // It takes over (serving) or is given up (retiring).
    if (!co_await wait_until([&] { return !successor || !successor->successor(); }, limit))
      co_return R::fail("the pool was removed by a reload");
    if (!successor || successor->retiring() || successor->slot.state != WorkerState::ready)
      co_return R::fail(fmt::format(
          "{}[{}]: the replacement did not become ready ({}); the restart stopped after {} of "
          "{} workers and pid {} keeps serving. See scgictl logs {}:{}",
          config_.name, i, successor ? successor->last_exit : "it could not start", done,
          indexes.size(), old_pid, config_.name, i));
    report(fmt::format("{}[{}]: pid {} ready; draining pid {}", config_.name, i, successor->pid,
                       old_pid));
    if (!co_await wait_until([&] { return old->pid == 0; }, limit))
      co_return R::fail("the pool was removed by a reload");
    report(fmt::format("{}[{}]: pid {} stopped ({})", config_.name, i, old_pid,
                       old->pid == 0 ? old->last_exit : "still stopping"));
    ++done;
  }
  co_return R::ok(
      fmt::format("pool {}: restarted {} of {} worker(s)", config_.name, done, indexes.size()));
}

Result<std::string> PoolSupervisor::scale(std::uint32_t workers) {
  // By hand the pool gets a fixed size, until the next reload.
  config_.min_workers = config_.max_workers = workers;
  const std::uint32_t before = wanted_count();
  target_ = workers;
  apply_scaling(clock_.now());
  if (workers > before + Scaler::kStartsPerTick)
    return Result<std::string>::ok(fmt::format(
        "pool {}: {} workers; starting them a few at a time (scgictl status {} shows them)",
        config_.name, workers, config_.name));
  return Result<std::string>::ok(fmt::format("pool {}: {} workers", config_.name, workers));
}

Result<std::string> PoolSupervisor::set_drained(std::uint32_t index, bool drained) {
  int changed = 0;
  for (const WorkerPtr& worker : find_by_index(index)) {
    if (worker->retiring()) continue;
    feed(worker, drained ? WorkerEvent::hold : WorkerEvent::release);
    ++changed;
  }
  if (changed == 0)
    return Result<std::string>::fail(fmt::format("{}[{}] is retiring", config_.name, index));
  return Result<std::string>::ok(fmt::format(
      "{}[{}] {}", config_.name, index,
      drained ? "drained: it gets no new request" : "undrained: it gets requests again"));
}

asio::awaitable<Result<std::string>> PoolSupervisor::wait_drained(std::uint32_t index,
                                                                  std::chrono::milliseconds limit) {
  std::weak_ptr<bool> alive = alive_;
  const auto in_flight = [this, index] {
    std::uint32_t count = 0;
    for (const WorkerPtr& worker : find_by_index(index))
      if (worker->backend) count += worker->backend->in_flight();
    return count;
  };
  // The balancer reports a drained worker idle when its last request ends.
  if (co_await changed_.wait_until([&] { return in_flight() == 0; }, clock_.now() + limit))
    co_return Result<std::string>::ok(
        fmt::format("{}[{}] drained: nothing in flight", config_.name, index));
  if (!alive.lock()) co_return Result<std::string>::fail("the pool was removed by a reload");
  co_return Result<std::string>::fail(
      fmt::format("{}[{}] still has {} request(s) in flight", config_.name, index, in_flight()));
}

}  // namespace scgi::manager
