// What a worker costs, read from /proc: resident memory for max_rss and the
// metrics, CPU time for the metrics and `scgictl top`. Linux only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <unordered_map>

#include "scgi/result.hpp"

namespace scgi::manager {

struct ProcessUsage {
  std::uint64_t rss_bytes = 0;  // resident pages × page size
  double cpu_seconds = 0;       // user + system time
};

// One process, from /proc/PID/stat. An error when it does not exist (any
// more) or the file cannot be read or parsed.
Result<ProcessUsage> read_process_usage(pid_t pid);

// Every process whose process group is `pgid` (a worker and the children it
// forked: each worker is its own session and group), summed by scanning
// /proc. Here cpu_seconds also counts the children each member has reaped,
// so the sum does not drop when a short-lived child exits and is waited for.
// An error when no process is in the group.
Result<ProcessUsage> read_group_usage(pid_t pgid);

// The same for every process group on the machine at once, from one pass over
// /proc: a manager with many workers reads each process once, not once per worker.
using GroupUsage = std::unordered_map<pid_t, ProcessUsage>;
Result<GroupUsage> read_all_group_usage();

}  // namespace scgi::manager
