#include "pool_supervisor.hpp"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <asio/co_spawn.hpp>
#include <asio/post.hpp>

#include <algorithm>

#include "config_diff.hpp"
#include "pool_worker.hpp"
#include "process_snapshot.hpp"
#include "process_stats.hpp"
#include "readiness_probe.hpp"
#include "scgi/log.hpp"
#include "socket_owner.hpp"
#include "worker_spawn.hpp"

namespace scgi::manager {
namespace {

using std::chrono::duration_cast;
using namespace std::chrono_literals;

// How long a slow request's worker output is collected at most, and after its end.
constexpr auto kSlowOutputWatch = 30s;
constexpr auto kSlowOutputLinger = 1s;
constexpr std::uint32_t kSlowLooksPerSecond = 5;

// "exit status 1", "signal 9 (Killed)".
std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return fmt::format("signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
  return fmt::format("wait status {:#x}", status);
}

}  // namespace

PoolSupervisor::PoolSupervisor(const Context& context, PoolConfig config,
                               std::shared_ptr<proxy::Pool> pool)
    : control_(context.control),
      config_(std::move(config)),
      pool_(std::move(pool)),
      inherited_(pool_->backends()),
      usage_(context.usage),
      launcher_(context.launcher),
      clock_(context.clock),
      runtime_dir_(context.runtime_dir),
      logs_(context.logs),
      slow_log_(context.slow_log),
      target_(config_.min_workers),
      scaler_(config_.idle_timeout),
      random_(std::random_device{}()) {
  // On the control thread, for as long as this supervisor lives.
  proxy::ProxyServer::PoolListener listener;
  listener.idle = [this](const std::shared_ptr<proxy::Backend>& backend) {
    on_backend_idle(backend);
  };
  listener.timed_out = [this](const std::shared_ptr<proxy::Backend>& backend,
                              const std::string& uri, std::chrono::nanoseconds elapsed) {
    on_backend_timed_out(backend, uri, elapsed);
  };
  listener.slow = [this](const std::shared_ptr<proxy::Backend>& backend,
                         const proxy::SlowRequest& request) { on_slow_request(backend, request); };
  listener.slow_ended = [this](const std::shared_ptr<proxy::Backend>&, std::uint64_t id, int status,
                               std::chrono::nanoseconds running) {
    on_slow_request_ended(id, status, running);
  };
  balancer_reports_ = context.proxy.subscribe(pool_, std::move(listener));
}

PoolSupervisor::~PoolSupervisor() {
  *alive_ = false;
  alive_.reset();
  while (!output_watches_.empty())
    stop_watching_output(output_watches_.begin()->first);
  slow_log_.forget(config_.name);
}

std::string PoolSupervisor::worker_name(const Worker& worker) const {
  return fmt::format("{}[{}]", config_.name, worker.index);
}

void PoolSupervisor::start() {
  start_toward_target();  // the first few; each tick starts more
  arm_tick();
}

// --- The state machine's driver. ---

void PoolSupervisor::feed(WorkerPtr worker, WorkerEvent event) {
  // An action may cause another event (a spawn that fails at once): those
  // queue up and run after the current transition, never inside it.
  worker->pending.push_back(event);
  if (worker->feeding) return;
  worker->feeding = true;
  while (!worker->pending.empty()) {
    const WorkerEvent next_event = worker->pending.front();
    worker->pending.erase(worker->pending.begin());
    const Transition t = transition(worker->slot, next_event);
    if (!t.valid) {
      after_transition(worker);
      continue;
    }
    const WorkerState before = worker->slot.state;
    worker->slot = t.next;
    if (before != t.next.state || !t.actions.empty()) {
      ++worker->epoch;
      worker->deadline.reset();
    }
    for (const WorkerAction action : t.actions)
      carry_out(worker, action, next_event);
    after_transition(worker);
  }
  worker->feeding = false;
  changed_.notify();  // whatever waits on a worker's state looks again
}

void PoolSupervisor::carry_out(const WorkerPtr& worker, WorkerAction action, WorkerEvent cause) {
  switch (action) {
    case WorkerAction::spawn:
      spawn(worker);
      break;
    case WorkerAction::probe:
      probe(worker);
      break;
    case WorkerAction::route:
      route(worker);
      break;
    case WorkerAction::take_over:
      take_over(worker);
      break;
    case WorkerAction::give_up:
      give_up(worker);
      break;
    case WorkerAction::drain:
      drain(worker);
      break;
    case WorkerAction::hold_back:
    case WorkerAction::let_in:
      if (worker->backend)
        pool_->set_membership(worker->backend, action == WorkerAction::hold_back
                                                   ? proxy::Backend::Membership::draining
                                                   : proxy::Backend::Membership::ready);
      break;
    case WorkerAction::unroute:
      unroute(worker);
      break;
    case WorkerAction::terminate:
      signal_group(worker, SIGTERM);
      arm_deadline(worker, config_.stop_timeout, WorkerEvent::stop_timeout);
      break;
    case WorkerAction::kill:
      // After a ready_timeout the failed start has been logged already.
      if (worker->pid > 0 && cause == WorkerEvent::stop_timeout)
        log_warn("{}: pid {} did not stop within stop_timeout ({}): SIGKILL", worker_name(*worker),
                 worker->pid, format_duration(config_.stop_timeout));
      signal_group(worker, SIGKILL);
      break;
    case WorkerAction::count_failure:
      count_failure(worker);
      break;
    case WorkerAction::schedule_restart:
      log_info("{}: restarting in {}", worker_name(*worker),
               format_duration(worker->restart_delay));
      arm_deadline(worker, worker->restart_delay, WorkerEvent::backoff_done);
      break;
  }
}

void PoolSupervisor::after_transition(const WorkerPtr& worker) {
  // A retiring worker leaves once its process is gone.
  if (worker->slot.state == WorkerState::stopped && worker->retiring() && worker->pid == 0)
    std::erase(workers_, worker);
}

void PoolSupervisor::spawn(const WorkerPtr& worker) {
  // inherit keeps its listening socket across restarts (connections waiting
  // in its backlog survive); port and unix get a fresh address each time.
  worker->pinned.reset();  // routed ones linger (see unroute)
  if (!worker->socket || config_.socket != SocketMode::inherit) {
    worker->socket.reset();
    auto socket = WorkerSocket::prepare(config_, worker->index, runtime_dir_, worker->instance);
    if (!socket) {
      worker->last_exit = "could not start: " + socket.error();
      log_error("{}: {}", worker_name(*worker), worker->last_exit);
      return spawn_failed(worker);
    }
    worker->socket.emplace(std::move(socket).value());
  }
  auto pid = launcher_.launch(config_, worker->index, *worker->socket);
  if (!pid) {
    worker->last_exit = pid.error();
    log_error("{}", pid.error());
    return spawn_failed(worker);
  }
  worker->pid = pid.value();
  worker->started_at = clock_.now();
  worker->stayed_up_counted = false;
  worker->limits = limits_for_new_process(config_, random_);
  worker->usage = {};
  log_info("{}: started pid {} on {}", worker_name(*worker), worker->pid,
           worker->socket->address().to_string());
}

void PoolSupervisor::spawn_failed(const WorkerPtr& worker) {
  worker->failure_reason = RestartReason::exit;
  feed(worker, WorkerEvent::spawn_failed);  // runs once the current transition is done
}

void PoolSupervisor::probe(const WorkerPtr& worker, std::optional<Clock::time_point> until) {
  if (worker->pid == 0) return;
  auto owner = worker_uid(config_);
  if (!owner) {
    log_error("{}: {}", worker_name(*worker), owner.error());
    return;
  }
  const std::uint64_t epoch = worker->epoch;
  const auto deadline = until.value_or(clock_.now() + config_.ready_timeout);
  std::weak_ptr<Worker> weak = worker;
  std::weak_ptr<bool> alive = alive_;
  asio::co_spawn(
      control_,
      launcher_.wait_until_ready(worker->pid, probe_checks(worker, owner.value()), deadline),
      [this, weak, alive, epoch](std::exception_ptr e, Readiness readiness) {
        auto worker = weak.lock();
        if (e || !alive.lock() || !worker || worker->epoch != epoch) return;
        on_probe_result(worker, readiness);
      });
}

void PoolSupervisor::on_probe_result(const WorkerPtr& worker, Readiness readiness) {
  if (readiness.outcome == Readiness::Outcome::ready) {
    // Where the balancer will connect, known before it counts as ready, so
    // that routing it cannot fail. Unix mode connects through the pinned
    // socket; names and labels keep the path.
    const Address target = worker->pinned ? worker->pinned->address() : worker->socket->address();
    auto endpoints = resolve_endpoints(target);
    if (endpoints) {
      worker->endpoints = std::move(endpoints).value();
      return feed(worker, WorkerEvent::became_ready);
    }
    readiness = {Readiness::Outcome::refused, endpoints.error()};
  }
  switch (readiness.outcome) {
    case Readiness::Outcome::ready:  // routed above
      return;
    case Readiness::Outcome::timed_out:
      log_error("{}: pid {} did not accept connections within ready_timeout ({}): a failed start",
                worker_name(*worker), worker->pid, format_duration(config_.ready_timeout));
      worker->last_exit = "not ready within ready_timeout";
      break;
    case Readiness::Outcome::refused:
      log_error("{}: pid {}: {}: a failed start", worker_name(*worker), worker->pid,
                readiness.refusal);
      worker->last_exit = "refused: " + readiness.refusal;
      break;
  }
  worker->pinned.reset();
  worker->failure_reason = RestartReason::health;
  feed(worker, WorkerEvent::ready_timeout);
}

// What the probe may trust where the worker binds its socket itself: in unix
// mode the socket file must be a socket of the pool's user (pinned, and the
// peer of the connection that user); in port mode every listener that may
// take 127.0.0.1:PORT must be the pool's user, or another local user who took
// the port first would receive the pool's requests.
ProbeChecks PoolSupervisor::probe_checks(const WorkerPtr& worker, uid_t owner) {
  std::weak_ptr<Worker> weak = worker;
  const std::uint64_t epoch = worker->epoch;
  const SocketMode mode = config_.socket;
  ProbeChecks checks;
  checks.locate = [weak, epoch, owner, mode]() -> ProbeTarget {
    auto worker = weak.lock();
    if (!worker || worker->epoch != epoch || !worker->socket)
      return {{}, "the worker was stopped meanwhile"};
    Address address = worker->socket->address();
    if (mode == SocketMode::unix_socket) {
      if (!worker->pinned) {
        PinAttempt attempt = worker->socket->pin(owner);
        if (attempt.outcome == PinAttempt::Outcome::absent) return {};
        if (attempt.outcome == PinAttempt::Outcome::refused) return {{}, attempt.refusal};
        worker->pinned = std::move(attempt.socket);
      }
      address = worker->pinned->address();
    }
    auto endpoints = resolve_endpoints(address);
    if (!endpoints) return {{}, endpoints.error()};
    return {std::move(endpoints).value(), std::nullopt};
  };
  if (mode == SocketMode::unix_socket) {
    checks.verify = [owner](int fd) -> std::optional<std::string> {
      auto peer = unix_peer_uid(fd);
      if (!peer) return peer.error();
      if (peer.value() == owner) return std::nullopt;
      return fmt::format(
          "the process listening on its socket runs as uid {}, not as the pool's "
          "user (uid {})",
          peer.value(), owner);
    };
  } else if (mode == SocketMode::port) {
    const std::uint16_t port = worker->socket->address().port;
    checks.verify = [owner, port](int) -> std::optional<std::string> {
      auto uids = loopback_listener_uids(port);
      if (!uids) return uids.error();
      for (const uid_t uid : uids.value())
        if (uid != owner)
          return fmt::format(
              "127.0.0.1:{} is held by uid {}, not by the pool's user (uid {}): "
              "another process took the port; not routing to it",
              port, uid, owner);
      if (uids.value().empty())
        return fmt::format("no listener on 127.0.0.1:{} shows in /proc/net/tcp", port);
      return std::nullopt;
    };
  }
  return checks;
}

void PoolSupervisor::add_to_balancer(const WorkerPtr& worker) {
  const auto membership =
      worker->slot.held ? proxy::Backend::Membership::draining : proxy::Backend::Membership::ready;
  // Labelled by its slot in metrics: a restart or recycle starts no new series.
  worker->backend =
      pool_->add_backend(worker->socket->address().to_string(), worker->endpoints, membership,
                         fmt::format("{}:{}", config_.name, worker->index));
}

void PoolSupervisor::route(const WorkerPtr& worker) {
  worker->ready_since = clock_.now();
  add_to_balancer(worker);
  log_info(
      "{}: pid {} ready after {} ms", worker_name(*worker), worker->pid,
      duration_cast<std::chrono::milliseconds>(worker->ready_since - worker->started_at).count());
  retire_inherited_backends();
}

void PoolSupervisor::take_over(const WorkerPtr& worker) {
  // The worker it replaces is drained and stopped now.
  for (const WorkerPtr& old : find_by_index(worker->index)) {
    if (old == worker || old->retiring()) continue;
    worker->restarts = std::max(worker->restarts, old->restarts);  // the slot's count goes on
    retire(old);
  }
}

void PoolSupervisor::give_up(const WorkerPtr& worker) {
  log_error("{}: the replacement failed to start ({}); the running worker keeps serving",
            worker_name(*worker), worker->last_exit);
  // Recycling tries again only after the backoff ceiling.
  for (const WorkerPtr& old : find_by_index(worker->index))
    old->recycle_retry_at = clock_.now() + config_.restart_backoff.ceiling;
}

void PoolSupervisor::retire_inherited_backends() {
  // A worker can take their traffic now: they get no new request, and those
  // in flight finish (their Lease keeps the backend).
  for (const auto& backend : inherited_) {
    log_info(
        "pool {}: backend {} removed; the pool's workers take over and its requests in "
        "flight finish",
        config_.name, backend->name());
    pool_->remove_backend(backend);
  }
  inherited_.clear();
}

void PoolSupervisor::drain(const WorkerPtr& worker) {
  arm_deadline(worker, config_.stop_timeout, WorkerEvent::stop_timeout);
  if (!worker->backend) {
    post_event(worker, WorkerEvent::drained);
    return;
  }
  // Reports idle (now or when its last request ends) through on_backend_idle.
  pool_->set_membership(worker->backend, proxy::Backend::Membership::draining);
}

void PoolSupervisor::unroute(const WorkerPtr& worker) {
  if (!worker->backend) return;
  pool_->remove_backend(worker->backend);
  if (worker->pinned) lingering_.push_back({worker->backend, std::move(worker->pinned)});
  worker->pinned.reset();
  worker->backend.reset();
}

void PoolSupervisor::signal_group(const WorkerPtr& worker, int signal) {
  if (worker->pid == 0) return;
  if (auto error = launcher_.signal_group(worker->pid, signal))
    log_error("{}: {}", worker_name(*worker), *error);
}

void PoolSupervisor::count_failure(const WorkerPtr& worker) {
  const auto now = clock_.now();
  if (!worker->wanted_up()) return;
  worker->restart_delay = worker->backoff.on_failure();
  ++worker->restarts;
  count_restart(worker->failure_reason);
  if (failing_.on_failure(now))
    log_error(
        "pool {}: failing: its workers keep failing ({} failures within {}s, none stayed "
        "up); each restart waits longer, up to the backoff ceiling ({})",
        config_.name, FailingDetector::kFailures,
        std::chrono::duration_cast<std::chrono::seconds>(FailingDetector::kWindow).count(),
        format_duration(config_.restart_backoff.ceiling));
}

void PoolSupervisor::arm_deadline(const WorkerPtr& worker, std::chrono::nanoseconds after,
                                  WorkerEvent event) {
  const std::uint64_t epoch = worker->epoch;
  std::weak_ptr<Worker> weak = worker;
  std::weak_ptr<bool> alive = alive_;
  worker->deadline_at = clock_.now() + std::chrono::duration_cast<Clock::duration>(after);
  worker->deadline = clock_.after(after, [this, weak, alive, epoch, event] {
    auto worker = weak.lock();
    if (!alive.lock() || !worker || worker->epoch != epoch) return;
    feed(worker, event);
  });
}

void PoolSupervisor::post_event(const WorkerPtr& worker, WorkerEvent event) {
  std::weak_ptr<Worker> weak = worker;
  std::weak_ptr<bool> alive = alive_;
  asio::post(control_, [this, weak, alive, event] {
    auto worker = weak.lock();
    if (alive.lock() && worker) feed(worker, event);
  });
}

bool PoolSupervisor::on_exit(pid_t pid, int wait_status) {
  const auto it = std::find_if(workers_.begin(), workers_.end(),
                               [pid](const WorkerPtr& w) { return w->pid == pid; });
  if (it == workers_.end()) return false;
  const WorkerPtr worker = *it;
  worker->pid = 0;
  worker->last_exit = describe_wait_status(wait_status);
  worker->failure_reason = WIFSIGNALED(wait_status) ? RestartReason::signal : RestartReason::exit;
  const bool expected = worker->slot.state == WorkerState::stopping ||
                        worker->slot.state == WorkerState::backoff || !worker->wanted_up();
  if (expected)
    log_info("{}: pid {} ended: {}", worker_name(*worker), pid, worker->last_exit);
  else
    log_warn("{}: pid {} ended unexpectedly: {}", worker_name(*worker), pid, worker->last_exit);
  feed(worker, WorkerEvent::exited);
  return true;
}

// --- Workers coming and going. ---

PoolSupervisor::WorkerPtr PoolSupervisor::add_worker(std::uint32_t index, SlotRole role) {
  auto worker = std::make_shared<Worker>(index, next_instance_++, config_.restart_backoff);
  worker->slot.role = role;
  const auto position = std::find_if(workers_.begin(), workers_.end(),
                                     [index](const WorkerPtr& w) { return w->index > index; });
  workers_.insert(position, worker);
  return worker;
}

std::uint32_t PoolSupervisor::free_index() const {
  for (std::uint32_t index = 0;; ++index) {
    const bool taken = std::any_of(workers_.begin(), workers_.end(), [index](const WorkerPtr& w) {
      return w->index == index && !w->retiring();
    });
    if (!taken) return index;
  }
}

std::vector<PoolSupervisor::WorkerPtr> PoolSupervisor::find_by_index(std::uint32_t index) const {
  std::vector<WorkerPtr> found;
  for (const WorkerPtr& worker : workers_)
    if (worker->index == index) found.push_back(worker);
  return found;
}

bool PoolSupervisor::has_worker(std::uint32_t worker) const {
  return !find_by_index(worker).empty();
}

std::vector<std::uint32_t> PoolSupervisor::worker_indexes() const {
  std::vector<std::uint32_t> indexes;
  for (const WorkerPtr& worker : workers_)
    if (indexes.empty() || indexes.back() != worker->index) indexes.push_back(worker->index);
  return indexes;
}

PoolSupervisor::WorkerPtr PoolSupervisor::find_by_backend(const proxy::Backend* backend) const {
  for (const WorkerPtr& worker : workers_)
    if (worker->backend.get() == backend) return worker;
  return nullptr;
}

void PoolSupervisor::retire(const WorkerPtr& worker) {
  feed(worker, WorkerEvent::retire);
}

bool PoolSupervisor::replacing() const {
  return std::any_of(workers_.begin(), workers_.end(),
                     [](const WorkerPtr& w) { return w->successor(); });
}

void PoolSupervisor::replace(const WorkerPtr& worker, RestartReason reason, std::string why) {
  log_info("{}: pid {} {}: starting its replacement", worker_name(*worker), worker->pid, why);
  worker->recycle_retry_at = clock_.now() + config_.restart_backoff.ceiling;
  count_restart(reason);
  ++worker->restarts;
  const WorkerPtr successor = add_worker(worker->index, SlotRole::successor);
  successor->restarts = worker->restarts;    // the slot's count goes on
  successor->slot.held = worker->slot.held;  // a drain by hand carries over
  feed(successor, WorkerEvent::start);
}

void PoolSupervisor::count_restart(RestartReason reason) {
  ++restarts_[reason];
}

// --- Timers: readiness bookkeeping, recycling, scaling. ---

void PoolSupervisor::arm_tick() {
  // Owned by this supervisor: destroying it (or stopping) cancels the next tick.
  tick_alarm_ = clock_.after(Scaler::kTick, [this] {
    if (stopping_) return;
    try {
      tick(clock_.now(), ++ticks_ % 10 == 0);
    } catch (const std::exception& error) {
      log_error("pool {}: supervision: {}", config_.name,
                error.what());  // the next tick tries again
    }
    arm_tick();
  });
}

void PoolSupervisor::tick(Clock::time_point now, bool sample_usage) {
  std::erase_if(lingering_, [](const Lingering& l) { return l.backend.expired(); });
  if (sample_usage) traffic_.add(now, pool_->stats().snapshot().request_duration);
  const auto snapshot = workers_;  // ticks may add or retire workers
  for (const WorkerPtr& worker : snapshot) {
    if (worker->pid > 0 && sample_usage) {
      if (auto usage = usage_.group(worker->pid, now)) worker->usage = *usage;
    } else if (worker->pid > 0 && worker->usage.rss_bytes == 0) {
      // Just started: a first figure from its own process until the next pass.
      if (auto usage = read_process_usage(worker->pid)) worker->usage = usage.value();
    }
    if (worker->slot.state != WorkerState::ready) continue;
    worker->backoff.on_up(worker->ready_since, now);
    if (failing_.on_up(worker->ready_since, now))
      log_info("pool {}: recovered: {} stayed up", config_.name, worker_name(*worker));
    check_limits(worker, now);
  }
  apply_scaling(now);
}

void PoolSupervisor::check_limits(const WorkerPtr& worker, Clock::time_point now) {
  if (worker->slot.role != SlotRole::serving || !worker->wanted_up() || replacing() ||
      now < worker->recycle_retry_at)
    return;
  const WorkerFacts facts{.served = worker->backend ? worker->backend->requests() : 0,
                          .age = now - worker->started_at,
                          .rss_bytes = worker->usage.rss_bytes};
  RecycleLimits limits = worker->limits;
  limits.max_rss_bytes = config_.max_rss_bytes;  // a reload's new max_rss applies at once
  if (auto why = recycle_reason(facts, limits))
    replace(worker, RestartReason::recycle, std::move(*why));
}

std::uint32_t PoolSupervisor::wanted_count() const {
  // Hand-stopped workers keep their slot: the scaler does not fill it.
  return static_cast<std::uint32_t>(
      std::count_if(workers_.begin(), workers_.end(),
                    [](const WorkerPtr& w) { return w->slot.role == SlotRole::serving; }));
}

void PoolSupervisor::apply_scaling(Clock::time_point now) {
  ScaleInput input;
  input.now = now;
  input.target = target_;
  input.min_workers = config_.is_dynamic() ? config_.min_workers : target_;
  input.max_workers = config_.is_dynamic() ? config_.max_workers : target_;
  input.oldest_wait = pool_->oldest_wait();
  input.concurrency = config_.concurrency;
  for (const WorkerPtr& worker : workers_) {
    if (worker->slot.state == WorkerState::starting) ++input.starting;
    if (worker->backend) input.in_flight += worker->backend->in_flight();
  }
  if (config_.is_dynamic()) {
    switch (scaler_.decide(input)) {
      case ScaleDecision::grow:
        ++target_;
        log_info("pool {}: growing to {} workers (a request waited {} ms)", config_.name, target_,
                 duration_cast<std::chrono::milliseconds>(input.oldest_wait).count());
        break;
      case ScaleDecision::shrink:
        --target_;
        log_info("pool {}: shrinking to {} workers (idle for {})", config_.name, target_,
                 format_duration(config_.idle_timeout));
        break;
      case ScaleDecision::stay:
        break;
    }
  }
  // Make the count match the target: new workers get the lowest free index,
  // a few a tick; the highest-numbered ready worker goes first.
  start_toward_target();
  while (wanted_count() > target_) {
    WorkerPtr victim;
    for (const WorkerPtr& worker : workers_)
      if (worker->slot.role == SlotRole::serving) victim = worker;
    retire(victim);
  }
}

void PoolSupervisor::start_toward_target() {
  const std::uint32_t wanted = wanted_count();
  if (wanted >= target_) return;
  const auto starting = static_cast<std::uint32_t>(
      std::count_if(workers_.begin(), workers_.end(),
                    [](const WorkerPtr& w) { return w->slot.state == WorkerState::starting; }));
  for (std::uint32_t n = starts_allowed(target_ - wanted, starting); n > 0; --n)
    feed(add_worker(free_index(), SlotRole::serving), WorkerEvent::start);
}

// --- The balancer's reports. ---

void PoolSupervisor::on_backend_idle(const std::shared_ptr<proxy::Backend>& backend) {
  changed_.notify();                      // wait_drained() waits for this
  if (backend->in_flight() != 0) return;  // a late report; another comes when it is idle
  if (WorkerPtr worker = find_by_backend(backend.get());
      worker && worker->slot.state == WorkerState::draining)
    feed(worker, WorkerEvent::drained);
}

void PoolSupervisor::on_backend_timed_out(const std::shared_ptr<proxy::Backend>& backend,
                                          std::string uri, std::chrono::nanoseconds elapsed) {
  WorkerPtr worker = find_by_backend(backend.get());
  // Only a worker that is meant to serve on: one being stopped (by hand, or
  // at shutdown) is not replaced.
  if (!worker || config_.concurrency != 1 || stopping_ || replacing() ||
      worker->slot.role != SlotRole::serving || !worker->wanted_up() ||
      worker->slot.state != WorkerState::ready)
    return;
  // One request at a time and none answered: the worker is stuck (uWSGI's harakiri).
  log_warn("{}: pid {} is stuck: {} got no answer for {} ms (request_timeout {}); recycling it",
           worker_name(*worker), worker->pid, uri.empty() ? "a request" : quote_for_log(uri),
           duration_cast<std::chrono::milliseconds>(elapsed).count(),
           format_duration(config_.request_timeout));
  replace(worker, RestartReason::health, "is stuck");
}

void PoolSupervisor::on_slow_request(const std::shared_ptr<proxy::Backend>& backend,
                                     const proxy::SlowRequest& request) {
  ++slow_requests_;
  const auto now = clock_.now();
  if (now - slow_second_ >= 1s) {
    if (slow_unexamined_ > 0)
      log_warn("pool {}: {} more slow requests counted, not examined (at most {} a second)",
               config_.name, slow_unexamined_, kSlowLooksPerSecond);
    slow_second_ = now;
    slow_looks_ = 0;
    slow_unexamined_ = 0;
  }
  if (++slow_looks_ > kSlowLooksPerSecond) {
    ++slow_unexamined_;
    return;
  }
  SlowEntry entry;
  entry.id = request.id;
  entry.pool = config_.name;
  entry.method = request.method;
  entry.uri = request.uri;
  entry.trace_id = request.trace_id;
  entry.accepted = request.accepted;
  entry.queue_wait = request.queue_wait;
  entry.running = request.running;
  const WorkerPtr worker = find_by_backend(backend.get());
  // Only a process of ours that is still there (not yet reaped): its PID cannot be another's.
  if (worker && worker->pid > 0) {
    entry.worker = worker->index;
    entry.pid = worker->pid;
    entry.snapshot = snapshot_process(worker->pid);
    if (config_.slow_request_signal != 0) {
      if (::kill(worker->pid, config_.slow_request_signal) == 0)
        entry.signal = std::string(slow_request_signal_name(config_.slow_request_signal));
      else
        log_warn("{}: cannot send {} to pid {}: {}", worker_name(*worker),
                 slow_request_signal_name(config_.slow_request_signal), worker->pid,
                 ::strerror(errno));
    }
  }
  log_warn(
      "{}: slow request {}: {} {} running for {} ms (slow_request_threshold {}), queued {} ms; "
      "pid {}, {}, wchan {}, syscall {}{}",
      worker ? worker_name(*worker) : "pool " + config_.name, request.id,
      quote_for_log(request.method), quote_for_log(request.uri),
      duration_cast<std::chrono::milliseconds>(request.running).count(),
      format_duration(config_.slow_request_threshold),
      duration_cast<std::chrono::milliseconds>(request.queue_wait).count(), entry.pid,
      entry.snapshot.state.empty() ? "gone" : entry.snapshot.state, entry.snapshot.wchan,
      entry.snapshot.syscall, entry.signal.empty() ? "" : "; sent " + entry.signal);
  const bool watch = entry.worker.has_value();
  slow_log_.add(std::move(entry));
  if (!watch) return;

  // What the worker writes next (a traceback, after the signal) goes into the
  // entry, and is tagged in the pool's log.
  auto output = std::make_unique<OutputWatch>(control_);
  output->worker = worker->index;
  output->pid = worker->pid;
  output->tag = fmt::format("slow request {}", request.id);
  logs_.tag(config_.name, worker->index, worker->pid, output->tag);
  // Only that process's lines carry the tag (a replacement may share the index).
  output->subscription = logs_.subscribe(
      config_.name, worker->index,
      [this, id = request.id, mark = "[" + output->tag + "] "](const std::string& line) {
        if (line.find(mark) != std::string::npos) slow_log_.add_output(id, line);
      });
  output->until.expires_after(kSlowOutputWatch);
  output->until.async_wait(
      [this, id = request.id, alive = std::weak_ptr<bool>(alive_)](const std::error_code& error) {
        if (!error && alive.lock()) stop_watching_output(id);
      });
  output_watches_[request.id] = std::move(output);
}

void PoolSupervisor::on_slow_request_ended(std::uint64_t id, int status,
                                           std::chrono::nanoseconds running) {
  slow_log_.end(id, status, running);
  const auto found = output_watches_.find(id);
  if (found == output_watches_.end()) return;
  // A second more: output the worker wrote as it finished may still be in its pipe.
  OutputWatch& output = *found->second;
  if (output.until.expiry() - Clock::now() < kSlowOutputLinger) return;
  output.until.expires_after(kSlowOutputLinger);  // cancels the longer wait
  output.until.async_wait(
      [this, id, alive = std::weak_ptr<bool>(alive_)](const std::error_code& error) {
        if (!error && alive.lock()) stop_watching_output(id);
      });
}

void PoolSupervisor::stop_watching_output(std::uint64_t id) {
  const auto found = output_watches_.find(id);
  if (found == output_watches_.end()) return;
  OutputWatch& output = *found->second;
  logs_.unsubscribe(output.subscription);
  logs_.untag(config_.name, output.worker, output.pid, output.tag);
  output.until.cancel();
  output_watches_.erase(found);
}

// --- Reload and stop. ---

void PoolSupervisor::update(PoolConfig config) {
  const bool roll = needs_new_workers(config_, config);
  const bool bounds_changed =
      config.min_workers != config_.min_workers || config.max_workers != config_.max_workers;
  config_ = std::move(config);
  scaler_.set_idle_timeout(config_.idle_timeout);
  if (bounds_changed) target_ = std::clamp(target_, config_.min_workers, config_.max_workers);
  if (roll) {
    log_info("pool {}: its command, environment or identity changed: rolling restart",
             config_.name);
    asio::co_spawn(
        control_,
        [this, alive = std::weak_ptr<bool>(alive_)]() -> asio::awaitable<void> {
          // After a restart in progress (by hand, or for an earlier reload).
          if (!alive.lock()) co_return;
          if (!co_await changed_.wait_until([this] { return !restarting_; },
                                            Clock::time_point::max()))
            co_return;  // the pool went away meanwhile
          const auto result = co_await restart_workers(std::nullopt);
          if (!alive.lock()) co_return;  // removed meanwhile: nothing of it to read
          if (!result) log_error("pool {}: {}", config_.name, result.error());
        },
        log_failure("pool " + config_.name + ": rolling restart"));
  }
}

asio::awaitable<void> PoolSupervisor::stop_all() {
  // Draining and SIGTERM each wait up to stop_timeout; this is only a backstop.
  const auto limit = config_.stop_timeout * 2 + std::chrono::seconds(1);
  // A pool removed by a reload may be stopped by the shutdown too, and be
  // destroyed when the other stop ends: nothing of it is read after that.
  const std::weak_ptr<bool> alive = alive_;
  stopping_ = true;
  // A reload that converted the pool back owns what it had before.
  inherited_.clear();
  tick_alarm_.reset();
  for (const WorkerPtr& worker : std::list<WorkerPtr>(workers_))
    feed(worker, WorkerEvent::halt);
  const auto no_process_left = [this] {
    return std::none_of(workers_.begin(), workers_.end(),
                        [](const WorkerPtr& w) { return w->pid > 0; });
  };
  co_await changed_.wait_until(no_process_left, clock_.now() + limit);
  if (!alive.lock()) co_return;
  for (const WorkerPtr& worker : workers_) {
    if (worker->pid == 0) continue;
    log_warn("{}: pid {} still running after {}: SIGKILL", worker_name(*worker), worker->pid,
             format_duration(duration_cast<Milliseconds>(limit)));
    signal_group(worker, SIGKILL);
  }
  // SIGKILL cannot be caught: the exits follow at once (bounded all the same).
  co_await changed_.wait_until(no_process_left, clock_.now() + std::chrono::seconds(1));
}

// --- Status. ---

control::PoolStatus PoolSupervisor::status() const {
  control::PoolStatus out;
  out.name = config_.name;
  out.listen = config_.listen ? config_.listen->to_string() : "";
  out.failing = failing_.failing();
  out.min_workers = config_.min_workers;
  out.max_workers = config_.max_workers;
  out.target_workers = target_;
  out.queue_length = pool_->queue_length();
  out.requests = traffic_.total_requests();
  out.request_rate = traffic_.requests_per_second();
  out.latency_p50_seconds = traffic_.quantile_seconds(0.5);
  out.latency_p99_seconds = traffic_.quantile_seconds(0.99);
  out.slow_requests = slow_requests_;
  for (const auto& [reason, label] : {std::pair{RestartReason::exit, "exit"},
                                      {RestartReason::signal, "signal"},
                                      {RestartReason::recycle, "recycle"},
                                      {RestartReason::health, "health"}}) {
    const auto it = restarts_.find(reason);
    out.restarts[label] = it == restarts_.end() ? 0 : it->second;
  }
  const auto now = clock_.now();
  for (const WorkerPtr& worker : workers_) {
    control::WorkerStatus w;
    w.index = worker->index;
    w.pid = worker->pid;
    w.state = std::string(manager::name(worker->slot.state));
    w.wanted = worker->wanted_up() ? "up" : "down";
    w.drained = worker->slot.held;
    w.address = worker->socket ? worker->socket->address().to_string() : "";
    if (worker->pid > 0)
      w.uptime_seconds = std::chrono::duration<double>(now - worker->started_at).count();
    if (worker->backend) {
      w.requests = worker->backend->requests();
      w.in_flight = worker->backend->in_flight();
    }
    w.rss_bytes = worker->usage.rss_bytes;
    w.cpu_seconds = worker->usage.cpu_seconds;
    w.restarts = worker->restarts;
    w.last_exit = worker->last_exit;
    out.in_flight += w.in_flight;
    out.workers.push_back(std::move(w));
  }
  const auto ready = std::count_if(workers_.begin(), workers_.end(), [](const WorkerPtr& w) {
    return w->slot.state == WorkerState::ready && !w->retiring();
  });
  const auto wanted_up = std::count_if(workers_.begin(), workers_.end(), [](const WorkerPtr& w) {
    return w->wanted_up() && w->slot.role == SlotRole::serving;
  });
  out.state = failing_.failing()   ? "failing"
              : wanted_up == 0     ? "stopped"
              : ready >= wanted_up ? "running"
                                   : "degraded";
  return out;
}

}  // namespace scgi::manager
