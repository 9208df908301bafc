#include "scgi/units.hpp"

#include <array>
#include <charconv>
#include <limits>

namespace scgi {
namespace {

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

constexpr std::array kDurationUnits{Unit{"ms", 1}, Unit{"s", 1000}, Unit{"m", 60'000},
                                    Unit{"h", 3'600'000}};

constexpr std::array kSizeUnits{Unit{"B", 1},
                                Unit{"KiB", 1ull << 10},
                                Unit{"MiB", 1ull << 20},
                                Unit{"GiB", 1ull << 30},
                                Unit{"TiB", 1ull << 40},
                                Unit{"kB", 1000},
                                Unit{"KB", 1000},
                                Unit{"MB", 1000'000},
                                Unit{"GB", 1000'000'000},
                                Unit{"TB", 1000'000'000'000ull}};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Reads the leading run of digits of `text` into `value`; returns how many were read.
std::size_t read_digits(std::string_view text, std::uint64_t& value, bool& overflow) {
  std::size_t n = 0;
  while (n < text.size() && is_digit(text[n]))
    ++n;
  if (n == 0) return 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + n, value);
  overflow = ec == std::errc::result_out_of_range;
  return n;
}

template <std::size_t N>
const Unit* find_unit(const std::array<Unit, N>& units, std::string_view name) {
  for (const Unit& unit : units)
    if (unit.name == name) return &unit;
  return nullptr;
}

bool multiply_adds_overflow(std::uint64_t value, std::uint64_t factor, std::uint64_t total,
                            std::uint64_t limit = std::numeric_limits<std::int64_t>::max()) {
  return value > limit / factor || total > limit - value * factor;
}

}  // namespace

Result<Milliseconds> parse_duration(std::string_view text) {
  using R = Result<Milliseconds>;
  const std::string quoted = "\"" + std::string(text) + "\"";
  if (text == "0") return R::ok(Milliseconds(0));
  if (text.empty()) return R::fail("empty duration: write a number with a unit, e.g. \"5s\"");
  std::uint64_t total = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    std::uint64_t value = 0;
    bool overflow = false;
    const std::size_t digits = read_digits(rest, value, overflow);
    if (digits == 0)
      return R::fail("bad duration " + quoted +
                     ": expected digits followed by a unit (ms, s, m, h), e.g. \"250ms\"");
    rest.remove_prefix(digits);
    std::size_t unit_length = 0;
    while (unit_length < rest.size() && !is_digit(rest[unit_length]))
      ++unit_length;
    const std::string_view unit_name = rest.substr(0, unit_length);
    if (unit_name.empty())
      return R::fail("duration " + quoted + " needs a unit: ms, s, m or h (e.g. \"" +
                     std::string(text) + "s\")");
    const Unit* unit = find_unit(kDurationUnits, unit_name);
    if (unit == nullptr)
      return R::fail("unknown unit \"" + std::string(unit_name) + "\" in duration " + quoted +
                     ": use ms, s, m or h");
    if (overflow || multiply_adds_overflow(value, unit->factor, total,
                                           static_cast<std::uint64_t>(kMaxDuration.count())))
      return R::fail("duration " + quoted + " is too large: at most " +
                     format_duration(kMaxDuration) + " (a year)");
    total += value * unit->factor;
    rest.remove_prefix(unit_length);
  }
  return R::ok(Milliseconds(static_cast<Milliseconds::rep>(total)));
}

Result<std::uint64_t> parse_size(std::string_view text) {
  using R = Result<std::uint64_t>;
  const std::string quoted = "\"" + std::string(text) + "\"";
  std::uint64_t value = 0;
  bool overflow = false;
  const std::size_t digits = read_digits(text, value, overflow);
  if (digits == 0)
    return R::fail("bad size " + quoted +
                   ": expected digits with an optional unit (B, KiB, MiB, GiB), e.g. \"64KiB\"");
  const std::string_view unit_name = text.substr(digits);
  std::uint64_t factor = 1;
  if (!unit_name.empty()) {
    const Unit* unit = find_unit(kSizeUnits, unit_name);
    if (unit == nullptr)
      return R::fail("unknown unit \"" + std::string(unit_name) + "\" in size " + quoted +
                     ": use B, KiB, MiB, GiB, TiB (or kB, MB, GB, TB)");
    factor = unit->factor;
  }
  if (overflow || multiply_adds_overflow(value, factor, 0))
    return R::fail("size " + quoted + " is too large");
  return R::ok(value * factor);
}

std::string format_duration(Milliseconds duration) {
  auto ms = static_cast<std::uint64_t>(duration.count() < 0 ? 0 : duration.count());
  if (ms == 0) return "0s";
  std::string out;
  for (auto it = kDurationUnits.rbegin(); it != kDurationUnits.rend(); ++it) {
    if (ms >= it->factor) {
      out += std::to_string(ms / it->factor) + std::string(it->name);
      ms %= it->factor;
    }
  }
  return out;
}

std::string format_size(std::uint64_t bytes) {
  // Binary units only, largest that divides exactly.
  for (std::size_t i = 4; i >= 1; --i) {
    const Unit& unit = kSizeUnits[i];
    if (bytes != 0 && bytes % unit.factor == 0)
      return std::to_string(bytes / unit.factor) + std::string(unit.name);
  }
  return std::to_string(bytes);
}

}  // namespace scgi
