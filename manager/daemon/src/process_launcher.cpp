#include "process_launcher.hpp"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/use_awaitable.hpp>

#include <fmt/format.h>

#include <array>
#include <cerrno>

#include "output_lines.hpp"
#include "scgi/log.hpp"
#include "worker_logs.hpp"
#include "worker_spawn.hpp"

namespace scgi::manager {
namespace {

using asio::experimental::as_tuple;

// A worker's stdout or stderr, line by line into the logs, until the pipe
// closes (the worker and every child that inherited it are gone). The line
// splitter lives in `capture`, where an upgrade finds its partial line.
asio::awaitable<void> capture_output(asio::posix::stream_descriptor pipe,
                                     std::shared_ptr<ProcessLauncher::CapturedOutputs> outputs,
                                     ProcessLauncher::CapturedOutputs::iterator capture) {
  std::array<char, 16 * 1024> buffer;
  for (;;) {
    auto [ec, n] =
        co_await pipe.async_read_some(asio::buffer(buffer), as_tuple(asio::use_awaitable));
    if (n > 0) capture->second.lines.feed(std::string_view(buffer.data(), n));
    if (ec) break;
  }
  capture->second.lines.finish();
  outputs->erase(capture);
}

}  // namespace

Result<pid_t> ProcessLauncher::launch(const PoolConfig& pool, std::uint32_t index,
                                      const WorkerSocket& socket) {
  int out[2] = {-1, -1};
  int err[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    const std::string error =
        fmt::format("{}[{}]: could not start: pipe: {}", pool.name, index, ::strerror(errno));
    for (int fd : {out[0], out[1], err[0], err[1]})
      if (fd >= 0) ::close(fd);
    return Result<pid_t>::fail(error);
  }
  auto pid = spawn_worker(pool, index, socket, {out[1], err[1]});
  ::close(out[1]);
  ::close(err[1]);
  if (!pid) {
    ::close(out[0]);
    ::close(err[0]);
    return pid;
  }
  for (int fd : {out[0], err[0]})
    capture(pool.name, index, pid.value(), fd, {});
  return pid;
}

void ProcessLauncher::capture(const std::string& pool, std::uint32_t index, pid_t pid, int fd,
                              std::string_view partial) {
  OutputLines lines([&logs = logs_, pool, index, pid](std::string_view text, bool continued) {
    logs.write(pool, index, pid, text, continued);
  });
  // The line the previous image was in the middle of: held as it was (a
  // longer one, from another image's splitter, goes out in pieces).
  lines.feed(partial);
  const auto entry = outputs_->emplace(pid, CapturedOutput{fd, std::move(lines)});
  asio::co_spawn(control_,
                 capture_output(asio::posix::stream_descriptor(control_, fd), outputs_, entry),
                 log_failure("output capture"));
}

std::vector<ProcessLauncher::OutputPipe> ProcessLauncher::output_pipes(pid_t pid) const {
  std::vector<OutputPipe> pipes;
  const auto [first, last] = outputs_->equal_range(pid);
  for (auto it = first; it != last; ++it)
    pipes.push_back({it->second.fd, it->second.lines.partial()});
  return pipes;
}

void ProcessLauncher::adopt_output(const std::string& pool, std::uint32_t index, pid_t pid, int fd,
                                   std::string_view partial) {
  capture(pool, index, pid, fd, partial);
}

std::optional<std::string> ProcessLauncher::signal_group(pid_t pid, int signal) {
  // The worker leads its own session and process group: its children go too.
  if (pid > 0 && ::kill(-pid, signal) != 0 && errno != ESRCH)
    return fmt::format("kill({}, {}): {}", -pid, signal, ::strerror(errno));
  return std::nullopt;
}

asio::awaitable<Readiness> ProcessLauncher::wait_until_ready(pid_t, ProbeChecks checks,
                                                             Clock::time_point deadline) {
  co_return co_await manager::wait_until_ready(control_.get_executor(), std::move(checks),
                                               deadline);
}

}  // namespace scgi::manager
