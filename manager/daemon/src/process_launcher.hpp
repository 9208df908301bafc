// The real WorkerLauncher: fork/exec (worker_spawn.hpp) with stdout and stderr
// piped into the pool's log (worker_logs.hpp), kill(2) of the process group,
// and the readiness probe on the control context.
#pragma once

#include <asio/io_context.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "output_lines.hpp"
#include "worker_launcher.hpp"

namespace scgi::manager {

class WorkerLogs;

class ProcessLauncher final : public WorkerLauncher {
 public:
  ProcessLauncher(asio::io_context& control, WorkerLogs& logs) : control_(control), logs_(logs) {}

  Result<pid_t> launch(const PoolConfig& pool, std::uint32_t index,
                       const WorkerSocket& socket) override;
  std::optional<std::string> signal_group(pid_t pid, int signal) override;
  asio::awaitable<Readiness> wait_until_ready(pid_t pid, ProbeChecks checks,
                                              Clock::time_point deadline) override;

  // An upgrade's: the pipes that carry a worker's output to its log (their
  // read ends, open until the worker and its children closed them) with the
  // line each is in the middle of, and capturing them again in the next
  // image, that line first. Bytes the worker wrote meanwhile wait in the pipe.
  struct OutputPipe {
    int fd;
    std::string partial;  // OutputLines::partial()
  };
  std::vector<OutputPipe> output_pipes(pid_t pid) const;
  void adopt_output(const std::string& pool, std::uint32_t index, pid_t pid, int fd,
                    std::string_view partial);

  // A pipe being captured: its read end, and its bytes being cut into lines.
  struct CapturedOutput {
    int fd;
    OutputLines lines;
  };
  // By worker pid; each leaves when its pipe closes. Entries never move (a
  // node-based map): a capture refers to its own until it erases it.
  using CapturedOutputs = std::multimap<pid_t, CapturedOutput>;

 private:
  void capture(const std::string& pool, std::uint32_t index, pid_t pid, int fd,
               std::string_view partial);

  asio::io_context& control_;
  WorkerLogs& logs_;
  std::shared_ptr<CapturedOutputs> outputs_ = std::make_shared<CapturedOutputs>();
};

}  // namespace scgi::manager
