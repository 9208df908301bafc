// For control-socket tests: a ControlHandler that answers from a script and
// records what it was asked, a ControlServer running it on its own thread,
// and a scratch folder. Shared by the server and scgictl tests.
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "control_handler.hpp"
#include "control_server.hpp"
#include "sample_status.hpp"

namespace scgi::test {

// A fresh folder under /tmp, traversable by everyone (0755: tests connect as
// another user), removed with everything in it. Short, for sun_path.
class ScratchFolder {
 public:
  ScratchFolder() {
    char name[] = "/tmp/scgi-ctl-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw std::runtime_error("cannot create a temp folder");
    path_ = name;
    ::chmod(name, 0755);
  }
  ~ScratchFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Answers status from `pools`, every other command with `next` (and records
// it as "restart app:1"), and logs from `recent` plus emit().
class ScriptedHandler : public manager::ControlHandler {
 public:
  std::vector<control::PoolStatus> pools;
  std::vector<std::string> calls;
  bool fail_next = false;
  std::string message = "done";
  std::vector<std::string> recent;
  std::map<std::uint64_t, LogCallback> subscribers;
  std::uint64_t unsubscribed = 0;  // how many subscriptions ended

  Result<std::vector<control::PoolStatus>> status(const std::string& pool) override {
    if (pool.empty()) return Result<std::vector<control::PoolStatus>>::ok(pools);
    for (const auto& candidate : pools)
      if (candidate.name == pool) return Result<std::vector<control::PoolStatus>>::ok({candidate});
    return Result<std::vector<control::PoolStatus>>::fail("no pool named " + pool);
  }
  asio::awaitable<Result<std::string>> start(manager::WorkerTarget target) override {
    co_return answer("start " + control::to_string(target));
  }
  asio::awaitable<Result<std::string>> stop(manager::WorkerTarget target) override {
    co_return answer("stop " + control::to_string(target));
  }
  // restart reports `restart_steps` as progress, `restart_delay` apart (a
  // rolling restart is slow, and its steps come as it goes); others answer at once.
  std::chrono::milliseconds restart_delay{0};
  std::vector<std::string> restart_steps{"app:0 replacement ready", "app:0 old worker stopped"};
  Progress last_progress;  // kept, as a careless handler might
  asio::awaitable<Result<std::string>> restart(manager::WorkerTarget target,
                                               Progress progress) override {
    calls.push_back("restart " + control::to_string(target));
    last_progress = progress;
    for (const std::string& step : restart_steps) {
      if (progress) progress(step);
      if (restart_delay.count() > 0) {
        asio::steady_timer timer(co_await asio::this_coro::executor, restart_delay);
        co_await timer.async_wait(asio::use_awaitable);
      }
    }
    co_return answer();
  }
  asio::awaitable<Result<std::string>> scale(std::string pool, std::uint32_t workers) override {
    co_return answer("scale " + pool + " " + std::to_string(workers));
  }
  asio::awaitable<Result<std::string>> reload() override { co_return answer("reload"); }
  asio::awaitable<Result<std::string>> upgrade(int connection_fd, nlohmann::json) override {
    calls.push_back(connection_fd >= 0 ? "upgrade" : "upgrade without a connection");
    co_return answer();
  }
  asio::awaitable<Result<std::string>> drain(manager::WorkerTarget target, bool wait) override {
    co_return answer("drain " + control::to_string(target) + (wait ? " wait" : ""));
  }
  asio::awaitable<Result<std::string>> undrain(manager::WorkerTarget target) override {
    co_return answer("undrain " + control::to_string(target));
  }
  std::vector<std::string> recent_logs(const manager::WorkerTarget& target,
                                       std::size_t lines) override {
    calls.push_back("logs " + control::to_string(target) + " " + std::to_string(lines));
    const std::size_t from = recent.size() > lines ? recent.size() - lines : 0;
    return {recent.begin() + static_cast<std::ptrdiff_t>(from), recent.end()};
  }
  std::uint64_t subscribe_logs(const manager::WorkerTarget&, LogCallback callback) override {
    subscribers.emplace(++last_subscription_, std::move(callback));
    return last_subscription_;
  }
  void unsubscribe_logs(std::uint64_t subscription) override {
    if (subscribers.erase(subscription) > 0) ++unsubscribed;
  }
  Result<std::vector<nlohmann::json>> slowlog(const std::string& pool) override {
    calls.push_back("slowlog " + pool);
    return Result<std::vector<nlohmann::json>>::ok({});
  }
  void emit(const std::string& line) {
    for (auto& [id, callback] : subscribers)
      callback(line);
  }

 private:
  Result<std::string> answer(std::string call) {
    calls.push_back(std::move(call));
    return answer();
  }
  Result<std::string> answer() {
    if (std::exchange(fail_next, false)) return Result<std::string>::fail("it went wrong");
    return Result<std::string>::ok(message);
  }
  std::uint64_t last_subscription_ = 0;
};

// A ControlServer with a ScriptedHandler on its own io_context thread.
class RunningServer {
  // The tests' clients run in this process, which the server refuses by default.
  static manager::ControlServerLimits in_process_clients(manager::ControlServerLimits limits,
                                                         bool refuse_own_process) {
    limits.refuse_own_process = refuse_own_process;
    return limits;
  }

 public:
  explicit RunningServer(std::string path, std::string group = "",
                         manager::ControlServerLimits limits = {}, bool refuse_own_process = false)
      : server_(std::make_unique<manager::ControlServer>(
            context_, std::move(path), std::move(group), handler_,
            in_process_clients(limits, refuse_own_process))) {
    handler_.pools = two_worker_pool();
    std::string error;
    if (!server_->open(error)) throw std::runtime_error("control server: " + error);
    thread_ = std::thread([this] { context_.run(); });
  }
  ~RunningServer() {
    on_loop([this] { server_->close(); });
    work_.reset();
    // Every connection ends once closed; a bounded wait, then a hard stop.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!context_.stopped() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    context_.stop();
    thread_.join();
    server_.reset();
  }
  RunningServer(const RunningServer&) = delete;
  RunningServer& operator=(const RunningServer&) = delete;

  const std::string& path() const { return server_->path(); }

  // Runs `f` on the server's thread (where the handler lives) and returns its result.
  template <class F>
  auto on_loop(F f) -> std::invoke_result_t<F> {
    std::packaged_task<std::invoke_result_t<F>()> task(std::move(f));
    auto result = task.get_future();
    asio::post(context_, [&task] { task(); });
    return result.get();
  }
  ScriptedHandler& handler() { return handler_; }  // only from on_loop(), once running
  manager::ControlServer& server() { return *server_; }

 private:
  asio::io_context context_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ =
      asio::make_work_guard(context_);
  ScriptedHandler handler_;
  std::unique_ptr<manager::ControlServer> server_;
  std::thread thread_;
};

// Polls `condition` on the server's thread every 5 ms until it holds or `timeout` passes.
template <class F>
bool eventually_on(RunningServer& server, F condition,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (server.on_loop(condition)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return server.on_loop(condition);
}

}  // namespace scgi::test
