#include "config_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <tuple>

namespace scgi::detail {

void ErrorList::add(const toml::source_position& at, std::string message) {
  errors_.push_back(ConfigError{file_, at.line, at.column, std::move(message)});
}

void ErrorList::add_file(std::string message) {
  errors_.push_back(ConfigError{file_, 0, 0, std::move(message)});
}

std::vector<ConfigError> ErrorList::take_sorted() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return std::move(errors_);
}

SourcePosition to_position(const toml::source_position& at) {
  return SourcePosition{at.line, at.column};
}

std::string quote(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t bound) {
  // Optimal string alignment: insertions, deletions, substitutions and swaps
  // of two neighbours ("prot" for "port") each count one. Three rows suffice;
  // the smallest cell of a row never decreases from one row to the next, so
  // once it passes `bound` the answer can only be larger.
  const auto same = [&](std::size_t i, std::size_t j) {
    return std::tolower(static_cast<unsigned char>(a[i])) ==
           std::tolower(static_cast<unsigned char>(b[j]));
  };
  std::vector<std::size_t> before(b.size() + 1), previous(b.size() + 1), row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    previous[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    row[0] = i;
    std::size_t row_minimum = row[0];
    for (std::size_t j = 1; j <= b.size(); ++j) {
      row[j] = std::min(
          {previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (same(i - 1, j - 1) ? 0 : 1)});
      if (i > 1 && j > 1 && same(i - 1, j - 2) && same(i - 2, j - 1))
        row[j] = std::min(row[j], before[j - 2] + 1);
      row_minimum = std::min(row_minimum, row[j]);
    }
    if (row_minimum > bound) return row_minimum;
    std::swap(before, previous);
    std::swap(previous, row);
  }
  return previous.back();
}

std::optional<std::string_view> nearest(std::string_view word,
                                        const std::vector<std::string_view>& candidates) {
  // Short words tolerate one slip, longer ones a few: beyond that it is a different word.
  const std::size_t tolerance = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
  std::optional<std::string_view> best;
  std::size_t best_distance = tolerance + 1;
  for (std::string_view candidate : candidates) {
    // The distance is at least the difference in length: skip the quadratic
    // work for words that cannot be close (a long garbage key costs nothing).
    const std::size_t length_gap = word.size() > candidate.size() ? word.size() - candidate.size()
                                                                  : candidate.size() - word.size();
    if (length_gap >= best_distance) continue;
    const std::size_t distance = edit_distance(word, candidate, best_distance - 1);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string describe_type(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a decimal number";
    case toml::node_type::boolean:
      return "true/false";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

namespace {

// Where a person sees a key: a [table] header at its "[", any other key at its name.
toml::source_position position_of(const toml::key& key, const toml::node& value) {
  if (const toml::table* table = value.as_table(); table != nullptr && !table->is_inline())
    return table->source().begin;
  if (const toml::array* array = value.as_array(); array != nullptr && !array->empty() &&
                                                   array->front().is_table() &&
                                                   !array->front().as_table()->is_inline())
    return array->front().source().begin;  // [[pool]]
  return key.source().begin;
}

std::string join(const std::vector<std::string_view>& words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

}  // namespace

ConfigReader::ConfigReader(const toml::table& table, std::string where,
                           std::vector<std::string_view> allowed, ErrorList& errors)
    : table_(table), where_(std::move(where)), errors_(errors) {
  for (auto&& [key, value] : table_) {
    if (std::find(allowed.begin(), allowed.end(), key.str()) != allowed.end()) continue;
    std::string message = fmt::format("unknown key \"{}\" {}", key.str(), where_);
    if (const auto suggestion = nearest(key.str(), allowed))
      message += fmt::format(": did you mean \"{}\"?", *suggestion);
    else
      message += fmt::format(": the keys allowed here are {}", join(allowed));
    errors_.add(position_of(key, value), std::move(message));
  }
}

toml::source_position ConfigReader::key_position(std::string_view key) const {
  const auto it = table_.find(key);
  return it == table_.end() ? table_.source().begin : position_of(it->first, it->second);
}

toml::source_position ConfigReader::value_position(std::string_view key) const {
  const toml::node* value = table_.get(key);
  return value == nullptr ? table_.source().begin : value->source().begin;
}

void ConfigReader::error_at_key(std::string_view key, std::string message) {
  errors_.add(key_position(key), std::move(message));
}

void ConfigReader::error_at(const toml::node& node, std::string message) {
  errors_.add(node.source().begin, std::move(message));
}

bool ConfigReader::read_string(std::string_view key, std::string& out) {
  const toml::node* value = node(key);
  if (value == nullptr) return false;
  const auto* text = value->as_string();
  if (text == nullptr) {
    error_at(*value,
             fmt::format("{} must be a string in quotes, not {}", key, describe_type(*value)));
    return false;
  }
  if (text->get().find('\0') != std::string::npos) {
    error_at(*value, fmt::format("{} must not contain a NUL character (\\u0000)", key));
    return false;
  }
  out = text->get();
  return true;
}

bool ConfigReader::read_bool(std::string_view key, bool& out) {
  const toml::node* value = node(key);
  if (value == nullptr) return false;
  const auto* flag = value->as_boolean();
  if (flag == nullptr) {
    error_at(*value, fmt::format("{} must be true or false (without quotes), not {}", key,
                                 describe_type(*value)));
    return false;
  }
  out = flag->get();
  return true;
}

bool ConfigReader::read_integer(std::string_view key, std::int64_t min, std::int64_t max,
                                std::int64_t& out) {
  const toml::node* value = node(key);
  if (value == nullptr) return false;
  const auto* number = value->as_integer();
  if (number == nullptr) {
    const std::string_view text =
        value->is_string() ? std::string_view(value->as_string()->get()) : std::string_view();
    std::int64_t quoted = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), quoted);
    if (!text.empty() && ec == std::errc() && end == text.data() + text.size())
      error_at(*value, fmt::format("{} must be a whole number without quotes: write {} = {}", key,
                                   key, quoted));
    else
      error_at(*value,
               fmt::format("{} must be a whole number, not {}", key, describe_type(*value)));
    return false;
  }
  const std::int64_t n = number->get();
  if (n < min) {
    if (min == 0)
      error_at(*value, fmt::format("{} cannot be negative ({}): use 0 or more", key, n));
    else
      error_at(*value, fmt::format("{} must be at least {}, not {}", key, min, n));
    return false;
  }
  if (n > max) {
    error_at(*value, fmt::format("{} must be at most {}, not {}", key, max, n));
    return false;
  }
  out = n;
  return true;
}

bool ConfigReader::read_duration(std::string_view key, Milliseconds& out) {
  const toml::node* value = node(key);
  if (value == nullptr) return false;
  const auto* text = value->as_string();
  if (text == nullptr) {
    error_at(*value, fmt::format("{} must be a duration in quotes with a unit, e.g. {} = \"{}\", "
                                 "not {}",
                                 key, key, format_duration(out), describe_type(*value)));
    return false;
  }
  auto duration = parse_duration(text->get());
  if (!duration) {
    error_at(*value, fmt::format("{}: {}", key, duration.error()));
    return false;
  }
  out = duration.value();
  return true;
}

bool ConfigReader::read_positive_duration(std::string_view key, Milliseconds& out) {
  Milliseconds duration = out;  // the default, as the example in messages
  if (!read_duration(key, duration)) return false;
  if (duration.count() <= 0) {
    error_at(*node(key),
             fmt::format("{} must be longer than 0, e.g. \"{}\"", key, format_duration(out)));
    return false;
  }
  out = duration;
  return true;
}

bool ConfigReader::read_size(std::string_view key, std::uint64_t& out) {
  const toml::node* value = node(key);
  if (value == nullptr) return false;
  const auto* text = value->as_string();
  if (text == nullptr) {
    error_at(*value,
             fmt::format("{} must be a size in quotes, e.g. {} = \"64KiB\" (\"0\" for none), "
                         "not {}",
                         key, key, describe_type(*value)));
    return false;
  }
  auto size = parse_size(text->get());
  if (!size) {
    error_at(*value, fmt::format("{}: {}", key, size.error()));
    return false;
  }
  out = size.value();
  return true;
}

bool ConfigReader::read_address(std::string_view key, std::optional<Address>& out) {
  std::string text;
  if (!read_string(key, text)) return false;
  if (text.empty()) {
    out.reset();
    return true;
  }
  auto address = parse_address(text);
  if (!address) {
    error_at(*node(key), fmt::format("{}: {}", key, address.error()));
    return false;
  }
  out = std::move(address).value();
  return true;
}

}  // namespace scgi::detail
