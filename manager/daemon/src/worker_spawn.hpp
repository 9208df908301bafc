// Starting one worker process: fork/exec of the pool's command as an argv
// (never a shell), in its own session, with exactly the pool's environment
// plus SCGI_POOL, SCGI_WORKER and the socket variables, dropped to the pool's
// user and group when the manager runs as root, and killed by the kernel if
// the manager dies (PR_SET_PDEATHSIG), so that no worker outlives it.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "scgi/config.hpp"
#include "scgi/result.hpp"
#include "worker_socket.hpp"

namespace scgi::manager {

struct SpawnOptions {
  int stdout_fd = -1;  // where the worker's output goes; -1 = /dev/null
  int stderr_fd = -1;
};

// The argv and environment of a worker, placeholders replaced; separate from
// spawning so that it can be checked without starting anything.
struct WorkerCommand {
  std::string path;               // argv[0] resolved against PATH (the pool's, else ours)
  std::vector<std::string> argv;  // as configured, {port}/{socket} replaced
  std::vector<std::string> env;   // NAME=VALUE; LISTEN_PID is added in the child
};
Result<WorkerCommand> build_worker_command(const PoolConfig& pool, std::uint32_t worker_index,
                                           const WorkerSocket& socket);

// The uid the pool's workers run as: its user's, else the manager's own.
Result<uid_t> worker_uid(const PoolConfig& pool);

// Forks and execs the worker. Returns its pid once exec succeeded; a failure
// before or at exec (no such file, no permission, bad cwd, unknown user) is an
// error whose message says which step failed and why, and leaves no process.
Result<pid_t> spawn_worker(const PoolConfig& pool, std::uint32_t worker_index,
                           const WorkerSocket& socket, const SpawnOptions& options = {});

}  // namespace scgi::manager
