// What the control server asks of the supervisor: the server speaks the
// protocol (framing, peer checks, malformed input); the handler carries out
// commands. Both run on the manager's control thread.
#pragma once

#include <asio/awaitable.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "scgi/control_protocol.hpp"
#include "scgi/result.hpp"

namespace scgi::manager {

// POOL or POOL:WORKER, as scgictl writes it (defined with the protocol, which parses it).
using control::WorkerTarget;

class ControlHandler {
 public:
  virtual ~ControlHandler() = default;

  // Every pool, or the one named (an error if there is none of that name).
  virtual Result<std::vector<control::PoolStatus>> status(const std::string& pool) = 0;
  // start/stop/restart of a pool or one worker; a pool restart is rolling.
  // Each completes when the change is done (or failed), with a message for the user.
  virtual asio::awaitable<Result<std::string>> start(WorkerTarget target) = 0;
  virtual asio::awaitable<Result<std::string>> stop(WorkerTarget target) = 0;
  // A restart reports each step (replacement ready, old one drained…) through
  // `progress` as it happens; the result is the summary.
  using Progress = std::function<void(const std::string& step)>;
  virtual asio::awaitable<Result<std::string>> restart(WorkerTarget target, Progress progress) = 0;
  virtual asio::awaitable<Result<std::string>> scale(std::string pool, std::uint32_t workers) = 0;
  virtual asio::awaitable<Result<std::string>> reload() = 0;
  // Replaces the manager's program in place (program_upgrade.hpp). Completes
  // only when the upgrade failed, with why; on success the next image answers
  // on `connection_fd` (the asking connection, handed over) to request `id`.
  virtual asio::awaitable<Result<std::string>> upgrade(int connection_fd, nlohmann::json id) = 0;
  // drain with `wait`: completes once nothing is in flight on the worker.
  virtual asio::awaitable<Result<std::string>> drain(WorkerTarget target, bool wait) = 0;
  virtual asio::awaitable<Result<std::string>> undrain(WorkerTarget target) = 0;

  // Worker output lines (already formatted, as in the log files): the last
  // `lines` kept, then, with a callback, every new one until unsubscribed.
  // The callback runs on the control thread and never after unsubscribe_logs
  // returns; it must not call back into the handler (it only queues the line).
  virtual std::vector<std::string> recent_logs(const WorkerTarget& target, std::size_t lines) = 0;
  using LogCallback = std::function<void(const std::string& line)>;
  virtual std::uint64_t subscribe_logs(const WorkerTarget& target, LogCallback callback) = 0;
  virtual void unsubscribe_logs(std::uint64_t subscription) = 0;

  // The slow log's entries of the pool ("" = every pool), oldest first, each
  // as its JSON object (docs/control-protocol.md, `slowlog`).
  virtual Result<std::vector<nlohmann::json>> slowlog(const std::string& pool) = 0;
};

}  // namespace scgi::manager
