// Reads one TOML table of the configuration file: hands out typed values,
// records each error at the position of the key or value it concerns, and
// reports every key the table does not allow. Private to config loading.
#pragma once

#include <toml++/toml.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scgi/address.hpp"
#include "scgi/config.hpp"
#include "scgi/units.hpp"

namespace scgi::detail {

// The errors of one file, in the order found.
class ErrorList {
 public:
  explicit ErrorList(std::string file) : file_(std::move(file)) {}

  void add(const toml::source_position& at, std::string message);
  // An error about the whole file, without a position.
  void add_file(std::string message);

  bool empty() const { return errors_.empty(); }
  const std::string& file() const { return file_; }
  // Sorted by position (stable), so a reader goes through the file once.
  std::vector<ConfigError> take_sorted();

 private:
  std::string file_;
  std::vector<ConfigError> errors_;
};

SourcePosition to_position(const toml::source_position& at);

// "text" in double quotes, as messages show values.
std::string quote(std::string_view text);

// Levenshtein distance, ignoring ASCII case: for "did you mean" suggestions.
// Stops early with some value above `bound` once the distance must exceed it.
std::size_t edit_distance(std::string_view a, std::string_view b,
                          std::size_t bound = std::numeric_limits<std::size_t>::max());

// The closest of `candidates` to `word` when it is close enough to be a typo.
std::optional<std::string_view> nearest(std::string_view word,
                                        const std::vector<std::string_view>& candidates);

// "a string", "an integer", …: the type of a value as a person says it.
std::string describe_type(const toml::node& node);

class ConfigReader {
 public:
  // `where` places the table in messages ("in [proxy]", "at the top level"). Keys
  // outside `allowed` are reported as unknown at once, with a suggestion.
  ConfigReader(const toml::table& table, std::string where, std::vector<std::string_view> allowed,
               ErrorList& errors);

  const toml::table& table() const { return table_; }
  ErrorList& errors() { return errors_; }

  bool has(std::string_view key) const { return table_.contains(key); }
  const toml::node* node(std::string_view key) const { return table_.get(key); }
  // Only for keys that are present.
  toml::source_position key_position(std::string_view key) const;
  toml::source_position value_position(std::string_view key) const;

  // For errors about the presence of a key (conflicts, wrong mode).
  void error_at_key(std::string_view key, std::string message);
  // For errors about a value (range, syntax).
  void error_at(const toml::node& node, std::string message);

  // Each read_* leaves `out` untouched when the key is absent or its value is
  // invalid (the error is recorded), and returns true when it stored a value.
  bool read_string(std::string_view key, std::string& out);
  bool read_integer(std::string_view key, std::int64_t min, std::int64_t max, std::int64_t& out);
  template <class Int>
  bool read_integer(std::string_view key, Int min, Int max, Int& out) {
    std::int64_t value = 0;
    if (!read_integer(key, static_cast<std::int64_t>(min), static_cast<std::int64_t>(max), value))
      return false;
    out = static_cast<Int>(value);
    return true;
  }
  bool read_duration(std::string_view key, Milliseconds& out);
  // A duration that must be longer than zero (timeouts, intervals).
  bool read_positive_duration(std::string_view key, Milliseconds& out);
  bool read_size(std::string_view key, std::uint64_t& out);
  bool read_bool(std::string_view key, bool& out);
  // "" reads as nullopt (off); otherwise an address as parse_address takes it.
  bool read_address(std::string_view key, std::optional<Address>& out);

 private:
  const toml::table& table_;
  std::string where_;
  ErrorList& errors_;
};

}  // namespace scgi::detail
