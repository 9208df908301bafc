// The [[pool]] keys of docs/design.md ("Configuration"), with their "kinds"
// and "reload" columns. A new key is added here first; the reader rejects
// any key not listed, and the unit tests fail until the key is read, compared
// and given a sample value.
#include "scgi/pool_keys.hpp"

namespace scgi {
namespace {

using Same = bool (*)(const PoolConfig&, const PoolConfig&);

template <auto Member>
bool same_member(const PoolConfig& a, const PoolConfig& b) {
  return a.*Member == b.*Member;
}

// workers = N sets both bounds; any change of either is one change of size.
bool same_worker_bounds(const PoolConfig& a, const PoolConfig& b) {
  return a.min_workers == b.min_workers && a.max_workers == b.max_workers;
}

constexpr PoolKinds kAll = PoolKinds::all();
constexpr PoolKinds kCommand = PoolKinds::only(PoolKind::command);
constexpr PoolKinds kBackends = PoolKinds::only(PoolKind::backends);
constexpr PoolKinds kDiscover = PoolKinds::only(PoolKind::discover);

constexpr PoolKey key(std::string_view name, PoolKinds kinds, OnReload on_reload, Same same) {
  return {name, kinds, on_reload, name, same};
}

constexpr PoolKey worker_bound(std::string_view name, Same same) {
  return {name, kCommand, OnReload::applies, "workers", same};
}

using enum OnReload;

// The order is the one of "the keys allowed here are …" and of the keys a
// reload reports as changed.
constexpr PoolKey kPoolKeys[] = {
    {"name", kAll, identifies, "name", nullptr},
    key("listen", kAll, applies, &same_member<&PoolConfig::listen>),
    key("listen_mode", kAll, applies, &same_member<&PoolConfig::listen_mode>),
    key("listen_group", kAll, applies, &same_member<&PoolConfig::listen_group>),
    key("command", kCommand, rolls, &same_member<&PoolConfig::command>),
    key("socket", kCommand, rolls, &same_member<&PoolConfig::socket>),
    worker_bound("workers", &same_worker_bounds),
    worker_bound("min_workers", &same_member<&PoolConfig::min_workers>),
    worker_bound("max_workers", &same_member<&PoolConfig::max_workers>),
    key("concurrency", kAll, applies, &same_member<&PoolConfig::concurrency>),
    key("queue_size", kAll, applies, &same_member<&PoolConfig::queue_size>),
    key("queue_timeout", kAll, applies, &same_member<&PoolConfig::queue_timeout>),
    key("client_timeout", kAll, applies, &same_member<&PoolConfig::client_timeout>),
    key("connect_timeout", kAll, applies, &same_member<&PoolConfig::connect_timeout>),
    key("request_timeout", kAll, applies, &same_member<&PoolConfig::request_timeout>),
    key("max_header", kAll, applies, &same_member<&PoolConfig::max_header_bytes>),
    key("max_body", kAll, applies, &same_member<&PoolConfig::max_body_bytes>),
    key("body_buffer", kAll, applies, &same_member<&PoolConfig::body_buffer_bytes>),
    key("response_buffer", kAll, applies, &same_member<&PoolConfig::response_buffer_bytes>),
    key("response_spill", kAll, applies, &same_member<&PoolConfig::response_spill_bytes>),
    key("client_min_rate", kAll, applies, &same_member<&PoolConfig::client_min_rate>),
    key("queue_time", kAll, applies, &same_member<&PoolConfig::queue_time>),
    key("keep_request_start", kAll, applies, &same_member<&PoolConfig::keep_request_start>),
    key("create_traceparent", kAll, applies, &same_member<&PoolConfig::create_traceparent>),
    key("max_requests", kCommand, applies, &same_member<&PoolConfig::max_requests>),
    key("max_lifetime", kCommand, applies, &same_member<&PoolConfig::max_lifetime>),
    key("max_rss", kCommand, applies, &same_member<&PoolConfig::max_rss_bytes>),
    key("cwd", kCommand, rolls, &same_member<&PoolConfig::cwd>),
    key("env", kCommand, rolls, &same_member<&PoolConfig::env>),
    key("user", kCommand, rolls, &same_member<&PoolConfig::user>),
    key("group", kCommand, rolls, &same_member<&PoolConfig::group>),
    key("allow_root", kCommand, applies, &same_member<&PoolConfig::allow_root>),
    key("stop_timeout", kCommand, applies, &same_member<&PoolConfig::stop_timeout>),
    key("restart_backoff", kCommand, applies, &same_member<&PoolConfig::restart_backoff>),
    key("ready_timeout", kCommand, applies, &same_member<&PoolConfig::ready_timeout>),
    key("idle_timeout", kCommand, applies, &same_member<&PoolConfig::idle_timeout>),
    key("slow_request_threshold", kCommand, applies,
        &same_member<&PoolConfig::slow_request_threshold>),
    key("slow_request_signal", kCommand, applies, &same_member<&PoolConfig::slow_request_signal>),
    key("backends", kBackends, applies, &same_member<&PoolConfig::backends>),
    key("discover", kDiscover, applies, &same_member<&PoolConfig::discover>),
    key("discover_interval", kDiscover, applies, &same_member<&PoolConfig::discover_interval>),
    key("resolver", kDiscover, applies, &same_member<&PoolConfig::resolver>),
};

}  // namespace

std::span<const PoolKey> pool_keys() {
  return kPoolKeys;
}

std::vector<std::string_view> pool_key_names() {
  std::vector<std::string_view> names;
  for (const PoolKey& key : kPoolKeys)
    names.push_back(key.name);
  return names;
}

std::string_view kind_key(PoolKind kind) {
  switch (kind) {
    case PoolKind::command:
      return "command";
    case PoolKind::backends:
      return "backends";
    case PoolKind::discover:
      return "discover";
  }
  return "command";
}

std::vector<std::string_view> keys_only_for(PoolKind kind) {
  std::vector<std::string_view> names;
  for (const PoolKey& key : kPoolKeys)
    if (key.kinds == PoolKinds::only(kind)) names.push_back(key.name);
  return names;
}

}  // namespace scgi
