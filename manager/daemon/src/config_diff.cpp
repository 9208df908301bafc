#include "config_diff.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "scgi/pool_keys.hpp"

namespace scgi::manager {
namespace {

std::string worker_count(const PoolConfig& pool) {
  return pool.is_dynamic() ? fmt::format("{}-{}", pool.min_workers, pool.max_workers)
                           : std::to_string(pool.min_workers);
}

}  // namespace

std::vector<std::string> changed_pool_keys(const PoolConfig& before, const PoolConfig& after) {
  std::vector<std::string> changed;
  for (const PoolKey& key : pool_keys()) {
    if (key.on_reload == OnReload::identifies || key.same(before, after)) continue;
    // workers, min_workers and max_workers are reported once, as workers.
    if (std::find(changed.begin(), changed.end(), key.reported_as) == changed.end())
      changed.emplace_back(key.reported_as);
  }
  return changed;
}

bool needs_new_workers(const PoolConfig& before, const PoolConfig& after) {
  const auto keys = pool_keys();
  return std::any_of(keys.begin(), keys.end(), [&](const PoolKey& key) {
    return key.on_reload == OnReload::rolls && !key.same(before, after);
  });
}

std::vector<std::string> describe_changes(const Config& before, const Config& after) {
  std::map<std::string, const PoolConfig*> old_pools;
  for (const PoolConfig& pool : before.pools)
    old_pools[pool.name] = &pool;
  std::vector<std::string> lines;
  for (const PoolConfig& pool : after.pools) {
    const auto found = old_pools.find(pool.name);
    if (found == old_pools.end()) {
      lines.push_back(fmt::format("pool {}: added", pool.name));
      continue;
    }
    const PoolConfig& old = *found->second;
    old_pools.erase(found);
    std::vector<std::string> changed = changed_pool_keys(old, pool);
    if (changed.empty()) continue;
    std::string line = fmt::format("pool {}: ", pool.name);
    if (std::erase(changed, "workers") > 0)
      line += fmt::format("workers {} → {}{}", worker_count(old), worker_count(pool),
                          changed.empty() ? "" : "; ");
    if (!changed.empty()) line += fmt::format("{} changed", fmt::join(changed, ", "));
    if (needs_new_workers(old, pool) && pool.kind == PoolKind::command)
      line += ": rolling restart onto it";
    lines.push_back(std::move(line));
  }
  for (const auto& [name, pool] : old_pools)
    lines.push_back(fmt::format("pool {}: removed: its workers drain and stop", name));
  return lines;
}

}  // namespace scgi::manager
