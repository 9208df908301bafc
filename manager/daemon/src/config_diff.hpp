// What a reload changes, in words for the log and for `scgictl reload`:
// pools added and removed, and per pool the keys whose values changed, with
// what that does (a changed command, env, cwd, user, group or socket rolls the
// pool's workers; the rest applies in place).
#pragma once

#include <string>
#include <vector>

#include "scgi/config.hpp"

namespace scgi::manager {

// One line per change, e.g. "pool api: added", "pool app: workers 4 → 6",
// "pool app: command changed: rolling restart"; empty when nothing changed.
std::vector<std::string> describe_changes(const Config& before, const Config& after);

// The keys of a pool that differ ("command", "workers", "queue_timeout", …), in
// the order of pool_keys().
std::vector<std::string> changed_pool_keys(const PoolConfig& before, const PoolConfig& after);

// Whether the change needs new worker processes: a key that rolls changed
// (scgi/pool_keys.hpp: command, env, cwd, user, group, socket).
bool needs_new_workers(const PoolConfig& before, const PoolConfig& after);

}  // namespace scgi::manager
