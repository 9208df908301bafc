// A pool's supervisor without processes and without waiting: a clock moved by
// hand, a launcher that hands out made-up pids and records what it was asked,
// and a bench that runs one PoolSupervisor against a real (never started)
// ProxyServer, so routing shows in the pool's real balancer.
#pragma once

#include <signal.h>
#include <asio/io_context.hpp>

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "pool_supervisor.hpp"
#include "scgi/proxy/proxy_server.hpp"
#include "supervisor_clock.hpp"
#include "usage_sampler.hpp"
#include "worker_launcher.hpp"

namespace scgi::test {

// Alarms fire, in time order, only when advance() moves time past them.
class ManualClock final : public manager::SupervisorClock {
 public:
  manager::Clock::time_point now() const override { return state_->now; }

  std::unique_ptr<manager::Alarm> after(std::chrono::nanoseconds delay,
                                        std::function<void()> callback) override {
    const std::uint64_t id = state_->next_id++;
    state_->due.emplace(state_->now + std::chrono::duration_cast<manager::Clock::duration>(delay),
                        Entry{id, std::move(callback)});
    return std::make_unique<ManualAlarm>(state_, id);
  }

  // Moves time forward by `step`, firing each alarm due on the way at its time.
  void advance(std::chrono::nanoseconds step) {
    const auto until = state_->now + std::chrono::duration_cast<manager::Clock::duration>(step);
    for (int fired = 0; fired < 1'000'000; ++fired) {
      auto first = state_->due.begin();
      if (first == state_->due.end() || first->first > until) break;
      state_->now = first->first;
      auto callback = std::move(first->second.callback);
      state_->due.erase(first);
      callback();
    }
    state_->now = until;
  }

 private:
  struct Entry {
    std::uint64_t id;
    std::function<void()> callback;
  };
  struct State {
    manager::Clock::time_point now = manager::Clock::now();
    std::multimap<manager::Clock::time_point, Entry> due;
    std::uint64_t next_id = 1;
  };
  class ManualAlarm final : public manager::Alarm {
   public:
    ManualAlarm(std::shared_ptr<State> state, std::uint64_t id)
        : state_(std::move(state)), id_(id) {}
    ~ManualAlarm() override {
      std::erase_if(state_->due, [this](const auto& entry) { return entry.second.id == id_; });
    }

   private:
    std::shared_ptr<State> state_;
    std::uint64_t id_;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// Made-up pids (above any pid_max, so /proc never has them) and a record of
// every start and signal, in order: "start 0 5000000", "signal 5000000 15".
class ScriptedLauncher final : public manager::WorkerLauncher {
 public:
  Result<pid_t> launch(const PoolConfig& pool, std::uint32_t index,
                       const manager::WorkerSocket&) override {
    if (fail_starts > 0) {
      --fail_starts;
      return Result<pid_t>::fail(pool.name + "[" + std::to_string(index) +
                                 "]: could not start: no such file");
    }
    const pid_t pid = next_pid_++;
    running.insert(pid);
    events.push_back("start " + std::to_string(index) + " " + std::to_string(pid));
    return Result<pid_t>::ok(pid);
  }

  std::optional<std::string> signal_group(pid_t pid, int signal) override {
    events.push_back("signal " + std::to_string(pid) + " " + std::to_string(signal));
    signalled.push_back({pid, signal});
    return std::nullopt;
  }

  asio::awaitable<manager::Readiness> wait_until_ready(pid_t, manager::ProbeChecks,
                                                       manager::Clock::time_point) override {
    manager::Readiness readiness{manager::Readiness::Outcome::ready, {}};
    if (!readiness_script.empty()) {
      readiness.outcome = readiness_script.front();
      readiness_script.pop_front();
    }
    co_return readiness;
  }

  // What the next probes answer, in order; "ready" once empty.
  std::deque<manager::Readiness::Outcome> readiness_script;
  int fail_starts = 0;  // the next starts that fail
  std::set<pid_t> running;
  std::set<pid_t> ignore_sigterm;  // these pids die of SIGKILL only
  std::vector<std::pair<pid_t, int>> signalled;
  std::vector<std::string> events;

  pid_t last_pid() const { return next_pid_ - 1; }

 private:
  pid_t next_pid_ = 5'000'000;
};

// One pool, its supervisor and the doubles around it. settle() runs whatever
// is ready to run and delivers the exits the signals sent cause (a worker
// dies of SIGTERM unless it is in ignore_sigterm, always of SIGKILL).
class ScriptedPool {
 public:
  explicit ScriptedPool(PoolConfig pool) {
    pool.listen = Address{Address::Kind::tcp, "127.0.0.1", 0, {}};
    Config config;
    config.pools = {pool};
    proxy_.on_pool_created([&](const std::shared_ptr<proxy::Pool>& created) {
      pool_ = created;
      const manager::PoolSupervisor::Context context{.control = control_,
                                                     .proxy = proxy_,
                                                     .usage = usage_,
                                                     .launcher = launcher,
                                                     .clock = clock,
                                                     .runtime_dir = "/nonexistent",
                                                     .logs = logs_,
                                                     .slow_log = slow_log_};
      supervisor =
          std::make_unique<manager::PoolSupervisor>(context, *created->settings(), created);
    });
    std::vector<std::string> errors;
    if (!proxy_.apply(config, errors) || !supervisor)
      throw std::runtime_error("the pool could not be set up");
    supervisor->start();
    settle();
  }
  ~ScriptedPool() {
    supervisor.reset();
    proxy_.on_pool_created(nullptr);
  }

  void settle() {
    for (int round = 0; round < 100; ++round) {
      control_.restart();
      const std::size_t ran = control_.poll();
      const bool exited = deliver_exits();
      if (ran == 0 && !exited) return;
    }
    throw std::runtime_error("the supervisor never settled");
  }
  void advance(std::chrono::nanoseconds step) {
    clock.advance(step);
    settle();
  }
  // The process `pid` ended with `wait_status` (as waitpid reports it).
  void exit(pid_t pid, int wait_status) {
    launcher.running.erase(pid);
    supervisor->on_exit(pid, wait_status);
    settle();
  }

  control::PoolStatus status() const { return supervisor->status(); }
  // The workers' states in index order: "ready ready backoff".
  std::string states() const {
    std::string out;
    for (const auto& worker : status().workers)
      out += (out.empty() ? "" : " ") + worker.state;
    return out;
  }
  std::size_t routed() const { return pool_->backends().size(); }
  // Routed and given new requests (not drained).
  std::size_t routable() const {
    std::size_t n = 0;
    for (const auto& backend : pool_->backends())
      if (backend->membership() == proxy::Backend::Membership::ready) ++n;
    return n;
  }
  asio::io_context& control() { return control_; }

  ManualClock clock;
  ScriptedLauncher launcher;
  std::unique_ptr<manager::PoolSupervisor> supervisor;

 private:
  bool deliver_exits() {
    bool any = false;
    for (std::size_t i = delivered_; i < launcher.signalled.size(); ++i) {
      const auto [pid, signal] = launcher.signalled[i];
      if (!launcher.running.contains(pid)) continue;
      if (signal == SIGTERM && launcher.ignore_sigterm.contains(pid)) continue;
      launcher.running.erase(pid);
      supervisor->on_exit(pid, signal);  // killed by it: the wait status is the signal
      any = true;
    }
    delivered_ = launcher.signalled.size();
    return any;
  }

  asio::io_context control_;
  proxy::ProxyServer proxy_{control_, 1};
  manager::UsageSampler usage_;
  manager::WorkerLogs logs_{""};
  manager::SlowLog slow_log_;
  std::shared_ptr<proxy::Pool> pool_;
  std::size_t delivered_ = 0;
};

}  // namespace scgi::test
