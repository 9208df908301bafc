#include "config_diff.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>

namespace scgi::manager {
namespace {

struct Key {
  const char* name;
  std::function<bool(const PoolConfig&, const PoolConfig&)> same;
};

template <class F>
Key key(const char* name, F field) {
  return {name, [field](const PoolConfig& a, const PoolConfig& b) { return field(a) == field(b); }};
}

const std::vector<Key>& pool_keys() {
  static const std::vector<Key> keys{
      key("listen", [](const PoolConfig& p) { return p.listen; }),
      key("listen_mode", [](const PoolConfig& p) { return p.listen_mode; }),
      key("listen_group", [](const PoolConfig& p) { return p.listen_group; }),
      key("command", [](const PoolConfig& p) { return p.command; }),
      key("backends", [](const PoolConfig& p) { return p.backends; }),
      key("socket", [](const PoolConfig& p) { return p.socket; }),
      key("workers", [](const PoolConfig& p) { return std::pair(p.min_workers, p.max_workers); }),
      key("concurrency", [](const PoolConfig& p) { return p.concurrency; }),
      key("queue_size", [](const PoolConfig& p) { return p.queue_size; }),
      key("queue_timeout", [](const PoolConfig& p) { return p.queue_timeout; }),
      key("client_timeout", [](const PoolConfig& p) { return p.client_timeout; }),
      key("connect_timeout", [](const PoolConfig& p) { return p.connect_timeout; }),
      key("request_timeout", [](const PoolConfig& p) { return p.request_timeout; }),
      key("max_header", [](const PoolConfig& p) { return p.max_header_bytes; }),
      key("max_body", [](const PoolConfig& p) { return p.max_body_bytes; }),
      key("body_buffer", [](const PoolConfig& p) { return p.body_buffer_bytes; }),
      key("response_buffer", [](const PoolConfig& p) { return p.response_buffer_bytes; }),
      key("response_spill", [](const PoolConfig& p) { return p.response_spill_bytes; }),
      key("client_min_rate", [](const PoolConfig& p) { return p.client_min_rate; }),
      key("max_requests", [](const PoolConfig& p) { return p.max_requests; }),
      key("max_lifetime", [](const PoolConfig& p) { return p.max_lifetime; }),
      key("max_rss", [](const PoolConfig& p) { return p.max_rss_bytes; }),
      key("cwd", [](const PoolConfig& p) { return p.cwd; }),
      key("env", [](const PoolConfig& p) { return p.env; }),
      key("user", [](const PoolConfig& p) { return p.user; }),
      key("group", [](const PoolConfig& p) { return p.group; }),
      key("allow_root", [](const PoolConfig& p) { return p.allow_root; }),
      key("stop_timeout", [](const PoolConfig& p) { return p.stop_timeout; }),
      key("restart_backoff",
          [](const PoolConfig& p) {
            return std::pair(p.restart_backoff.first, p.restart_backoff.ceiling);
          }),
      key("ready_timeout", [](const PoolConfig& p) { return p.ready_timeout; }),
      key("idle_timeout", [](const PoolConfig& p) { return p.idle_timeout; }),
  };
  return keys;
}

constexpr const char* kRollingKeys[] = {"command", "socket", "cwd", "env", "user", "group"};

std::string worker_count(const PoolConfig& pool) {
  return pool.is_dynamic() ? fmt::format("{}-{}", pool.min_workers, pool.max_workers)
                           : std::to_string(pool.min_workers);
}

}  // namespace

std::vector<std::string> changed_pool_keys(const PoolConfig& before, const PoolConfig& after) {
  std::vector<std::string> changed;
  for (const Key& k : pool_keys())
    if (!k.same(before, after)) changed.emplace_back(k.name);
  return changed;
}

bool needs_new_workers(const PoolConfig& before, const PoolConfig& after) {
  const auto changed = changed_pool_keys(before, after);
  return std::any_of(std::begin(kRollingKeys), std::end(kRollingKeys), [&](const char* k) {
    return std::find(changed.begin(), changed.end(), k) != changed.end();
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
