// The keys of a [[pool]] table, each written once: the kinds of pool that take
// it, what a reload does when its value changes, and how two PoolConfigs are
// compared on it. The pool reader (allowed keys, "only applies to" errors)
// and the reload's diff (changed keys, rolling restarts) both follow it.
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "scgi/config.hpp"

namespace scgi {

// A set of pool kinds: those that take a key.
class PoolKinds {
 public:
  static constexpr PoolKinds all() {
    return PoolKinds(bit(PoolKind::command) | bit(PoolKind::backends) | bit(PoolKind::discover));
  }
  static constexpr PoolKinds only(PoolKind kind) { return PoolKinds(bit(kind)); }

  constexpr bool contains(PoolKind kind) const { return (bits_ & bit(kind)) != 0; }
  constexpr bool operator==(const PoolKinds&) const = default;

 private:
  constexpr explicit PoolKinds(unsigned bits) : bits_(bits) {}
  static constexpr unsigned bit(PoolKind kind) { return 1u << static_cast<unsigned>(kind); }

  unsigned bits_;
};

// What a reload does with a key's new value.
enum class OnReload {
  identifies,  // name: a pool is the same pool across reloads by it, never compared
  applies,     // the pool takes the new value with the workers it has
  rolls,       // new worker processes: the pool's workers are replaced one at a time
};

struct PoolKey {
  std::string_view name;  // as written in [[pool]]
  PoolKinds kinds;
  OnReload on_reload;
  // The name a reload reports a change under: the key's own, except for
  // min_workers and max_workers, which are one setting with workers
  // ("workers 4 → 2-8").
  std::string_view reported_as;
  // Whether two pools have the same value for the key; null for name.
  bool (*same)(const PoolConfig&, const PoolConfig&);
};

// Every pool key, in the order messages list them (see pool_key_names).
std::span<const PoolKey> pool_keys();

// The names of pool_keys(), in their order: the keys a [[pool]] table allows.
std::vector<std::string_view> pool_key_names();

// The key whose presence makes a pool of `kind`: "command", "backends" or "discover".
std::string_view kind_key(PoolKind kind);

// The keys that only a pool of `kind` takes, its kind_key among them.
std::vector<std::string_view> keys_only_for(PoolKind kind);

}  // namespace scgi
