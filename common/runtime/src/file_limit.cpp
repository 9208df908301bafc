#include "scgi/runtime/file_limit.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include "scgi/log.hpp"

namespace scgi {
namespace {

// Listening sockets, the control socket and its clients, /metrics and its
// scrapers, log files, the workers' pipes: the daemon's own, besides requests.
constexpr std::uint64_t kOwnDescriptors = 256;

rlimit g_started_with{};
bool g_raised = false;

std::string limit_text(rlim_t value) {
  return value == RLIM_INFINITY ? std::string("unlimited") : std::to_string(value);
}

}  // namespace

FileLimits raise_file_limit() {
  FileLimits limits;
  if (::getrlimit(RLIMIT_NOFILE, &limits.started_with) != 0) {
    limits.error = errno;
    return limits;
  }
  g_started_with = limits.started_with;
  g_raised = true;
  limits.now = limits.started_with;
  if (limits.now.rlim_cur == limits.now.rlim_max) return limits;
  rlimit raised = limits.started_with;
  raised.rlim_cur = raised.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
    limits.error = errno;
    return limits;
  }
  limits.now = raised;
  return limits;
}

rlimit started_with_file_limit() {
  if (g_raised) return g_started_with;
  rlimit current{};
  ::getrlimit(RLIMIT_NOFILE, &current);
  return current;
}

std::uint64_t descriptors_wanted(const Config& config) {
  std::uint64_t wanted = kOwnDescriptors;
  for (const PoolConfig& pool : config.pools) {
    std::uint64_t backends = 1;
    if (pool.kind == PoolKind::command) backends = pool.max_workers;
    if (pool.kind == PoolKind::backends) backends = pool.backends.size();
    // A supervised pool without a front door takes no requests.
    if (pool.listen) wanted += pool.queue_size + 2 * backends * pool.concurrency;
  }
  return wanted;
}

void report_file_limit(const FileLimits& limits, const Config& config) {
  if (limits.error != 0)
    log_warn("cannot raise the descriptor limit (RLIMIT_NOFILE): {}", std::strerror(limits.error));
  log_info("descriptor limit (RLIMIT_NOFILE): soft {} (started with {}), hard {}",
           limit_text(limits.now.rlim_cur), limit_text(limits.started_with.rlim_cur),
           limit_text(limits.now.rlim_max));
  const std::uint64_t wanted = descriptors_wanted(config);
  if (limits.now.rlim_cur != RLIM_INFINITY && limits.now.rlim_cur < wanted)
    log_warn(
        "descriptor limit {} is below the {} that full queues and busy backends may need; "
        "raise LimitNOFILE (systemd) or `ulimit -n`, or lower queue_size: when descriptors run "
        "out, new connections wait and requests get 503",
        limits.now.rlim_cur, wanted);
}

}  // namespace scgi
