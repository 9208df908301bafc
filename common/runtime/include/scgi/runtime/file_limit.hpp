// The daemons' descriptor limit (RLIMIT_NOFILE): raised to the hard limit at
// start, because every queued request holds a descriptor and every request in
// flight two, and systemd's soft default (1024) is below one default queue.
// Workers get back the limit the daemon was started with.
#pragma once

#include <sys/resource.h>

#include <cstdint>

#include "scgi/config.hpp"

namespace scgi {

struct FileLimits {
  rlimit started_with{};  // as the daemon found it
  rlimit now{};           // after raising the soft limit
  int error = 0;          // errno of a getrlimit/setrlimit that failed, else 0
};

// Raises the soft RLIMIT_NOFILE to the hard limit and remembers the limit the
// process started with (for started_with_file_limit()). Call once, at start.
FileLimits raise_file_limit();

// The limit before raise_file_limit(), for a worker about to exec; the
// current one when it was never raised.
rlimit started_with_file_limit();

// Descriptors `config` may need at once: one per queued request and two per
// request in flight, per pool, plus a margin for the daemon's own. A pool whose
// backends come from DNS counts one backend per discovery (its size is unknown).
std::uint64_t descriptors_wanted(const Config& config);

// Logs both limits, and warns when the soft limit is below descriptors_wanted().
void report_file_limit(const FileLimits& limits, const Config& config);

}  // namespace scgi
