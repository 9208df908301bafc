// One pool's workers: starts them, routes them into the pool's balancer once
// ready, replaces the ones that die (with backoff), recycles, scales and
// stops them, and carries out scgictl's commands for the pool. Every worker
// follows the state × event table of worker_state.hpp; this class only feeds
// it events (process exits, probes, alarms, the balancer's drain reports) and
// carries out the actions that come back. Processes and time are reached only
// through the injected WorkerLauncher and SupervisorClock, so unit tests drive
// it without either. Around the driver (pool_supervisor.cpp): when to recycle
// (recycling.cpp), how many to run (scaler.cpp), scgictl's commands
// (pool_commands.cpp). Runs on the manager's control
// thread only; the balancer's events are posted there. A pool that had fixed
// or discovered backends until a reload keeps them until its first worker is
// routed, then drains them: the workers alone serve it from then on.
#pragma once

#include <sys/types.h>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "readiness_probe.hpp"
#include "recycling.hpp"
#include "restart_policy.hpp"
#include "scaler.hpp"
#include "scgi/config.hpp"
#include "scgi/control_protocol.hpp"
#include "scgi/proxy/pool.hpp"
#include "scgi/proxy/proxy_server.hpp"
#include "scgi/result.hpp"
#include "scgi/runtime/notifier.hpp"
#include "slow_log.hpp"
#include "supervisor_clock.hpp"
#include "traffic_window.hpp"
#include "usage_sampler.hpp"
#include "worker_launcher.hpp"
#include "worker_logs.hpp"
#include "worker_socket.hpp"
#include "worker_state.hpp"

namespace scgi::manager {

class PoolSupervisor {
 public:
  // What the pool's supervisor works with; all but `config` and `pool` are
  // shared by every pool of the manager and outlive the supervisor.
  struct Context {
    asio::io_context& control;
    proxy::ProxyServer& proxy;  // runs the pool
    UsageSampler& usage;
    WorkerLauncher& launcher;
    SupervisorClock& clock;
    std::string runtime_dir;
    WorkerLogs& logs;   // worker output, tagged while a slow request's is watched
    SlowLog& slow_log;  // slow_request_threshold's entries
  };
  PoolSupervisor(const Context& context, PoolConfig config, std::shared_ptr<proxy::Pool> pool);
  ~PoolSupervisor();
  PoolSupervisor(const PoolSupervisor&) = delete;
  PoolSupervisor& operator=(const PoolSupervisor&) = delete;

  const std::string& name() const { return config_.name; }

  // Starts the pool's workers and its timers.
  void start();
  // An upgrade's start(): takes over the workers the previous image ran
  // (handover_state()), each where it was in its life, then its timers.
  void adopt(const nlohmann::json& state);
  // The pool's part of an upgrade's state; `descriptors` gets what the next
  // image keeps open (sockets). Throws nlohmann::json::exception when a
  // state cannot be read (check_handover: without using anything).
  nlohmann::json handover_state(std::vector<int>& descriptors) const;
  static void check_handover(const nlohmann::json& state);
  // A rolling restart runs: an upgrade waits for it.
  bool restarting() const { return restarting_; }
  // A reload: new settings apply to workers started from now on; a changed
  // command, environment or identity rolls the pool onto it.
  void update(PoolConfig config);
  // Stops every worker (drain, SIGTERM, SIGKILL at stop_timeout) and returns
  // once none is left.
  asio::awaitable<void> stop_all();

  // A child process ended: true if it was one of this pool's workers.
  bool on_exit(pid_t pid, int wait_status);

  control::PoolStatus status() const;

  // scgictl's commands; `worker` nullopt = the whole pool. Messages for the user.
  Result<std::string> start_workers(std::optional<std::uint32_t> worker);
  Result<std::string> stop_workers(std::optional<std::uint32_t> worker);
  // Rolling: each replacement ready before its old worker drains; `progress`
  // hears of each step.
  asio::awaitable<Result<std::string>> restart_workers(
      std::optional<std::uint32_t> worker, std::function<void(const std::string&)> progress = {});
  Result<std::string> scale(std::uint32_t workers);
  Result<std::string> set_drained(std::uint32_t worker, bool drained);
  // Completes once nothing is in flight on the worker (bounded by `limit`).
  asio::awaitable<Result<std::string>> wait_drained(std::uint32_t worker,
                                                    std::chrono::milliseconds limit);
  bool has_worker(std::uint32_t worker) const;
  std::vector<std::uint32_t> worker_indexes() const;  // in order, each once

 private:
  struct Worker;
  using WorkerPtr = std::shared_ptr<Worker>;
  enum class RestartReason { exit, signal, recycle, health };

  // The state machine's driver.
  void feed(WorkerPtr worker, WorkerEvent event);
  // `cause`: the event whose transition asked for the action.
  void carry_out(const WorkerPtr& worker, WorkerAction action, WorkerEvent cause);
  void spawn(const WorkerPtr& worker);
  void spawn_failed(const WorkerPtr& worker);
  // Until `deadline`, by default ready_timeout from now.
  void probe(const WorkerPtr& worker, std::optional<Clock::time_point> deadline = std::nullopt);
  void route(const WorkerPtr& worker);
  // The worker's backend in the balancer, labelled by its slot.
  void add_to_balancer(const WorkerPtr& worker);
  void take_over(const WorkerPtr& worker);
  void give_up(const WorkerPtr& worker);
  void drain(const WorkerPtr& worker);
  void unroute(const WorkerPtr& worker);
  ProbeChecks probe_checks(const WorkerPtr& worker, uid_t owner);
  void retire_inherited_backends();
  void signal_group(const WorkerPtr& worker, int signal);
  void on_probe_result(const WorkerPtr& worker, Readiness readiness);
  void count_failure(const WorkerPtr& worker);
  void arm_deadline(const WorkerPtr& worker, std::chrono::nanoseconds after, WorkerEvent event);
  void post_event(const WorkerPtr& worker, WorkerEvent event);
  void after_transition(const WorkerPtr& worker);

  // Workers coming and going.
  WorkerPtr add_worker(std::uint32_t index, SlotRole role);
  std::uint32_t free_index() const;
  void retire(const WorkerPtr& worker);
  void replace(const WorkerPtr& worker, RestartReason reason, std::string why);
  bool replacing() const;

  // Every kTick: readiness bookkeeping, recycling, scaling; usage every second.
  void arm_tick();
  void tick(Clock::time_point now, bool sample_usage);
  void check_limits(const WorkerPtr& worker, Clock::time_point now);
  void apply_scaling(Clock::time_point now);
  // Starts the workers the target is short of, paced (starts_allowed).
  void start_toward_target();
  std::uint32_t wanted_count() const;

  // The balancer's reports, posted to the control thread.
  void on_backend_idle(const std::shared_ptr<proxy::Backend>& backend);
  void on_backend_timed_out(const std::shared_ptr<proxy::Backend>& backend, std::string uri,
                            std::chrono::nanoseconds elapsed);
  // slow_request_threshold: the entry, the snapshot, the signal, and the
  // worker's output watched until a second after the request ends (at most
  // kSlowOutputWatch).
  void on_slow_request(const std::shared_ptr<proxy::Backend>& backend,
                       const proxy::SlowRequest& request);
  void on_slow_request_ended(std::uint64_t id, int status, std::chrono::nanoseconds running);
  void stop_watching_output(std::uint64_t id);
  WorkerPtr find_by_backend(const proxy::Backend* backend) const;
  std::vector<WorkerPtr> find_by_index(std::uint32_t index) const;
  std::string worker_name(const Worker& worker) const;
  void count_restart(RestartReason reason);

  asio::io_context& control_;
  PoolConfig config_;
  std::shared_ptr<proxy::Pool> pool_;
  // Backends the pool had before it ran workers (a reload converted it).
  std::vector<std::shared_ptr<proxy::Backend>> inherited_;
  UsageSampler& usage_;
  WorkerLauncher& launcher_;
  SupervisorClock& clock_;
  std::string runtime_dir_;
  WorkerLogs& logs_;
  SlowLog& slow_log_;

  std::list<WorkerPtr> workers_;  // in index order; a worker and its replacement side by side
  std::uint32_t target_;          // workers wanted (the scaler moves it in a dynamic pool)
  std::uint32_t next_instance_ = 1;
  FailingDetector failing_;
  Scaler scaler_;
  TrafficWindow traffic_;
  std::map<RestartReason, std::uint64_t> restarts_;
  // Pinned sockets of backends taken out of the pool: an exchange that chose
  // one just before may still connect through it, so each stays open (its
  // descriptor number is not reused) until its backend is gone; see tick().
  struct Lingering {
    std::weak_ptr<proxy::Backend> backend;
    std::shared_ptr<PinnedSocket> pinned;
  };
  std::vector<Lingering> lingering_;
  std::uint64_t slow_requests_ = 0;  // scgi_slow_requests_total
  // At most kSlowLooksPerSecond slow requests a second get a look at their
  // worker, a signal and an entry; the rest are counted (a burst of them
  // cannot keep the control thread busy).
  Clock::time_point slow_second_{};
  std::uint32_t slow_looks_ = 0;
  std::uint64_t slow_unexamined_ = 0;
  // A slow request's worker output being collected into its entry.
  struct OutputWatch {
    explicit OutputWatch(asio::io_context& control) : until(control) {}
    std::uint32_t worker = 0;
    long pid = 0;
    std::string tag;
    std::uint64_t subscription = 0;
    asio::steady_timer until;
  };
  std::map<std::uint64_t, std::unique_ptr<OutputWatch>> output_watches_;
  std::mt19937 random_;
  std::unique_ptr<Alarm> tick_alarm_;
  std::uint64_t ticks_ = 0;
  bool stopping_ = false;
  bool restarting_ = false;  // one rolling restart at a time
  // Notified whenever a worker's state may have changed: rolling restarts,
  // stops and drains wait on it instead of polling.
  Notifier changed_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for posted callbacks
  // The balancer's reports on this pool, until this supervisor is destroyed.
  proxy::ProxyServer::Subscription balancer_reports_;
};

}  // namespace scgi::manager
