// Reads one [[pool]] table of the configuration into a PoolConfig. Private to
// config loading: the checks across pools (names and addresses used twice)
// are the loader's, with the positions this hands back.
#pragma once

#include <toml++/toml.h>

#include <string_view>
#include <utility>
#include <vector>

#include "config_reader.hpp"
#include "scgi/address.hpp"
#include "scgi/config.hpp"

namespace scgi::detail {

// Where a pool's values were written, for messages about the whole file.
struct PoolPositions {
  toml::source_position name_at{};    // valid when the pool's name is set
  toml::source_position listen_at{};  // valid when its listen is set
  std::vector<std::pair<Address, toml::source_position>> backends_at;
  // The key that sets how many workers the pool may run ("workers" or
  // "max_workers"; empty when neither is written), and where its value is.
  std::string_view workers_key{};
  toml::source_position workers_at{};
};

// Every error goes to `errors`; the result is meaningful only when there are none.
PoolConfig read_pool(const toml::table& table, Mode mode, RunsAs runs_as, ErrorList& errors,
                     PoolPositions& positions);

}  // namespace scgi::detail
