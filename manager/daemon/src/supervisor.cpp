#include "supervisor.hpp"

#include <sys/wait.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/ranges.h>

#include <algorithm>
#include <csignal>
#include <set>

#include "config_diff.hpp"
#include "scaler.hpp"
#include "scgi/log.hpp"
#include "scgi/runtime/service_notifier.hpp"

namespace scgi::manager {
namespace {

using asio::experimental::as_tuple;
using R = Result<std::string>;

// What a change asked for during an upgrade hears: the exec would cut it short.
constexpr const char* kUpgrading =
    "an upgrade in place is running: try again once it is done (a few milliseconds to "
    "shutdown_timeout)";

// How long a drain --wait may take at most: the pool's longest request.
std::chrono::milliseconds drain_wait_limit(const Config& config, const std::string& pool) {
  for (const PoolConfig& p : config.pools)
    if (p.name == pool) return p.request_timeout + p.stop_timeout;
  return std::chrono::milliseconds(60'000);
}

}  // namespace

Supervisor::Supervisor(asio::io_context& control, proxy::ProxyServer& proxy, const Config& config,
                       std::string runtime_dir)
    : control_(control),
      proxy_(proxy),
      config_(config),
      runtime_dir_(std::move(runtime_dir)),
      logs_(config.manager.log_dir),
      launcher_(control, logs_),
      clock_(control),
      child_signals_(control, SIGCHLD) {
  // A pool the proxy creates (now or at a reload) gets its supervisor before
  // it serves, so that the balancer's reports reach it from the first request.
  proxy_.on_pool_created([this](const std::shared_ptr<proxy::Pool>& pool) { create_pool(pool); });
}

Supervisor::~Supervisor() {
  proxy_.on_pool_created(nullptr);
}

void Supervisor::create_pool(const std::shared_ptr<proxy::Pool>& pool) {
  const auto settings = pool->settings();
  if (settings->kind != PoolKind::command) return;
  const PoolSupervisor::Context context{.control = control_,
                                        .proxy = proxy_,
                                        .usage = usage_,
                                        .launcher = launcher_,
                                        .clock = clock_,
                                        .runtime_dir = runtime_dir_,
                                        .logs = logs_,
                                        .slow_log = slow_log_};
  auto supervisor = std::make_unique<PoolSupervisor>(context, *settings, pool);
  if (started_) supervisor->start();
  pools_[settings->name] = std::move(supervisor);
}

bool Supervisor::start(std::vector<std::string>& errors, const nlohmann::json* handed) {
  asio::co_spawn(control_, reap_children(), log_failure("reaping workers"));
  if (!proxy_.apply(config_, errors)) return false;
  started_ = true;
  if (handed) {
    adopt_pools(*handed);
  } else {
    for (auto& [name, pool] : pools_)
      pool->start();
  }
  take_snapshot();
  asio::co_spawn(control_, refresh_snapshot(), log_failure("status sampling"));
  return true;
}

void Supervisor::sync_pools(const Config& config) {
  std::set<std::string> wanted;
  for (const PoolConfig& pool : config.pools) {
    if (pool.kind != PoolKind::command) continue;
    wanted.insert(pool.name);
    if (auto it = pools_.find(pool.name); it != pools_.end()) {
      it->second->update(pool);
    } else if (auto existing = proxy_.find_pool(pool.name)) {
      create_pool(existing);  // a pool of fixed backends that now runs workers
    }
  }
  for (auto it = pools_.begin(); it != pools_.end();) {
    if (wanted.count(it->first)) {
      ++it;
      continue;
    }
    log_info("pool {}: removed by the new configuration; stopping its workers", it->first);
    PoolSupervisor* leaving = it->second.get();
    leaving_.push_back(std::move(it->second));
    it = pools_.erase(it);
    asio::co_spawn(
        control_,
        [this, leaving]() -> asio::awaitable<void> {
          co_await leaving->stop_all();
          std::erase_if(leaving_, [leaving](const auto& p) { return p.get() == leaving; });
        },
        log_failure("stopping a removed pool"));
  }
}

asio::awaitable<void> Supervisor::reap_children() {
  for (;;) {
    // Several exits may share one SIGCHLD: reap until none is left.
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      bool known = false;
      for (auto& [name, pool] : pools_)
        if (!known) known = pool->on_exit(pid, status);
      for (auto& pool : leaving_)
        if (!known) known = pool->on_exit(pid, status);
    }
    auto [ec, signal] = co_await child_signals_.async_wait(as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

asio::awaitable<void> Supervisor::refresh_snapshot() {
  asio::steady_timer timer(control_);
  while (!stopping_) {
    timer.expires_after(std::chrono::milliseconds(250));
    co_await timer.async_wait(as_tuple(asio::use_awaitable));
    take_snapshot();
  }
}

void Supervisor::take_snapshot() {
  std::vector<control::PoolStatus> pools;
  for (const auto& [name, pool] : pools_)
    pools.push_back(pool->status());
  std::lock_guard lock(snapshot_mutex_);
  snapshot_ = std::move(pools);
}

std::vector<control::PoolStatus> Supervisor::snapshot() const {
  std::lock_guard lock(snapshot_mutex_);
  return snapshot_;
}

asio::awaitable<void> Supervisor::stop_all() {
  stopping_ = true;
  std::vector<PoolSupervisor*> all;
  for (auto& [name, pool] : pools_)
    all.push_back(pool.get());
  for (auto& pool : leaving_)
    all.push_back(pool.get());
  // Every pool stops at once; each waits for its own workers.
  auto remaining = std::make_shared<std::size_t>(all.size());
  asio::steady_timer done(control_, asio::steady_timer::time_point::max());
  for (PoolSupervisor* pool : all)
    asio::co_spawn(control_, pool->stop_all(), [remaining, &done](std::exception_ptr e) {
      log_failure("stopping a pool")(e);
      if (--*remaining == 0) done.cancel();
    });
  if (!all.empty()) co_await done.async_wait(as_tuple(asio::use_awaitable));
  // Each pool waited for its workers' exits (reaped by reap_children); what
  // else ended meanwhile (a child of ours that was no worker) is reaped here.
  int status = 0;
  while (::waitpid(-1, &status, WNOHANG) > 0) {
  }
  child_signals_.cancel();
  take_snapshot();
}

void Supervisor::reopen_logs() {
  logs_.reopen();
  proxy_.reopen_logs();
}

// --- Commands. ---

Result<PoolSupervisor*> Supervisor::find(const WorkerTarget& target) {
  const auto it = pools_.find(target.pool);
  if (it == pools_.end()) {
    std::vector<std::string> names;
    for (const auto& [name, pool] : pools_)
      names.push_back(name);
    return Result<PoolSupervisor*>::fail(
        names.empty()
            ? fmt::format("no pool '{}': this manager runs no workers", target.pool)
            : fmt::format("no pool '{}'; pools are: {}", target.pool, fmt::join(names, ", ")));
  }
  if (target.worker && !it->second->has_worker(*target.worker))
    return Result<PoolSupervisor*>::fail(fmt::format(
        "pool {} has no worker {}; its workers are: {} (see scgictl status {})", target.pool,
        *target.worker, fmt::join(it->second->worker_indexes(), ", "), target.pool));
  return Result<PoolSupervisor*>::ok(it->second.get());
}

Result<PoolSupervisor*> Supervisor::find_to_change(const WorkerTarget& target) {
  if (upgrading_) return Result<PoolSupervisor*>::fail(kUpgrading);
  return find(target);
}

bool Supervisor::busy() const {
  return !leaving_.empty() || std::any_of(pools_.begin(), pools_.end(), [](const auto& entry) {
    return entry.second->restarting();
  });
}

Result<std::vector<control::PoolStatus>> Supervisor::status(const std::string& pool) {
  using S = Result<std::vector<control::PoolStatus>>;
  std::vector<control::PoolStatus> out;
  if (!pool.empty()) {
    auto found = find({pool, std::nullopt});
    if (!found) return S::fail(found.error());
    out.push_back(found.value()->status());
    return S::ok(std::move(out));
  }
  for (const auto& [name, p] : pools_)
    out.push_back(p->status());
  return S::ok(std::move(out));
}

asio::awaitable<R> Supervisor::start(WorkerTarget target) {
  auto pool = find_to_change(target);
  if (!pool) co_return R::fail(pool.error());
  co_return pool.value()->start_workers(target.worker);
}

asio::awaitable<R> Supervisor::stop(WorkerTarget target) {
  auto pool = find_to_change(target);
  if (!pool) co_return R::fail(pool.error());
  co_return pool.value()->stop_workers(target.worker);
}

asio::awaitable<R> Supervisor::restart(WorkerTarget target, Progress progress) {
  auto pool = find_to_change(target);
  if (!pool) co_return R::fail(pool.error());
  co_return co_await pool.value()->restart_workers(target.worker, std::move(progress));
}

asio::awaitable<R> Supervisor::scale(std::string pool_name, std::uint32_t workers) {
  auto pool = find_to_change({pool_name, std::nullopt});
  if (!pool) co_return R::fail(pool.error());
  // Bounded by the file as loaded, not by an earlier scale (which fixes the size).
  const auto configured = std::find_if(config_.pools.begin(), config_.pools.end(),
                                       [&](const PoolConfig& p) { return p.name == pool_name; });
  if (configured != config_.pools.end()) {
    if (auto refusal =
            scale_refusal(*configured, config_.manager.max_workers_per_pool, workers, config_.path))
      co_return R::fail(*refusal);
  }
  co_return pool.value()->scale(workers);
}

// SIGHUP and scgictl reload both end here: systemd sees every reload begin
// and end, whatever its outcome.
asio::awaitable<R> Supervisor::upgrade(int connection_fd, nlohmann::json id) {
  if (!upgrade_) co_return R::fail("this manager cannot upgrade in place");
  co_return co_await upgrade_(connection_fd, std::move(id));
}

asio::awaitable<R> Supervisor::reload() {
  if (upgrading_) co_return R::fail(kUpgrading);
  notify_reloading("reloading " + config_.path);
  R result = co_await apply_reload();
  notify_ready(reload_status(static_cast<bool>(result), config_));
  co_return result;
}

asio::awaitable<R> Supervisor::apply_reload() {
  const ConfigResult result = load_config(config_.path, Mode::manager, running_as());
  if (!result) {
    std::string message = config_.path + " has errors; the running configuration stays:";
    for (const ConfigError& error : result.errors())
      message += "\n" + error.to_string();
    log_error("reload: {}", message);
    co_return R::fail(message);
  }
  std::vector<std::string> errors;
  if (!proxy_.apply(result.config(), errors)) {
    std::string message = "cannot apply " + config_.path + "; the running configuration stays:";
    for (const std::string& error : errors)
      message += "\n" + error;
    log_error("reload: {}", message);
    co_return R::fail(message);
  }
  const Config& next = result.config();
  if (next.manager.log_dir != config_.manager.log_dir ||
      next.manager.control_socket != config_.manager.control_socket ||
      next.manager.control_group != config_.manager.control_group ||
      next.metrics.listen != config_.metrics.listen || next.proxy.threads != config_.proxy.threads)
    log_warn(
        "reload: [manager] log_dir/control_socket/control_group, [metrics] listen and [proxy] "
        "threads change at the next start");
  const std::vector<std::string> changes = describe_changes(config_, next);
  sync_pools(next);
  config_ = next;
  take_snapshot();
  if (changes.empty()) {
    log_info("reload: {} applied: nothing changed", config_.path);
    co_return R::ok(config_.path + " applied: nothing changed");
  }
  std::string message = config_.path + " applied:";
  for (const std::string& change : changes) {
    log_info("reload: {}", change);
    message += "\n  " + change;
  }
  co_return R::ok(message);
}

asio::awaitable<R> Supervisor::drain(WorkerTarget target, bool wait) {
  if (!target.worker) co_return R::fail("drain needs POOL:WORKER");
  auto pool = find_to_change(target);
  if (!pool) co_return R::fail(pool.error());
  auto result = pool.value()->set_drained(*target.worker, true);
  if (!result || !wait) co_return result;
  co_return co_await pool.value()->wait_drained(*target.worker,
                                                drain_wait_limit(config_, target.pool));
}

asio::awaitable<R> Supervisor::undrain(WorkerTarget target) {
  if (!target.worker) co_return R::fail("undrain needs POOL:WORKER");
  auto pool = find_to_change(target);
  if (!pool) co_return R::fail(pool.error());
  co_return pool.value()->set_drained(*target.worker, false);
}

std::vector<std::string> Supervisor::recent_logs(const WorkerTarget& target, std::size_t lines) {
  return logs_.recent(target.pool, target.worker, lines);
}

std::uint64_t Supervisor::subscribe_logs(const WorkerTarget& target, LogCallback callback) {
  return logs_.subscribe(target.pool, target.worker, std::move(callback));
}

void Supervisor::unsubscribe_logs(std::uint64_t subscription) {
  logs_.unsubscribe(subscription);
}

Result<std::vector<nlohmann::json>> Supervisor::slowlog(const std::string& pool) {
  if (!pool.empty()) {
    if (auto found = find({pool, std::nullopt}); !found)
      return Result<std::vector<nlohmann::json>>::fail(found.error());
  }
  std::vector<nlohmann::json> entries;
  for (const SlowEntry& entry : slow_log_.entries(pool))
    entries.push_back(entry);
  return Result<std::vector<nlohmann::json>>::ok(std::move(entries));
}

}  // namespace scgi::manager
