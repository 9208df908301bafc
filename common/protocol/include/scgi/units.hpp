// Durations ("250ms", "5s", "2m", "1h30m") and sizes ("64KiB", "512MiB", "0")
// as written in configuration files, parsed with messages a person can act on.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "scgi/result.hpp"

namespace scgi {

using Milliseconds = std::chrono::milliseconds;

// The longest duration a file or a command line may give: a year. Every
// timeout is added to steady_clock::now() in nanoseconds (Asio's timers too),
// which a few hundred years would overflow; a year leaves room for sums.
inline constexpr Milliseconds kMaxDuration = std::chrono::hours(24 * 365);

// One or more groups of digits followed by a unit (ms, s, m, h), e.g. "1m30s";
// "0" alone is accepted as zero. Longer than kMaxDuration is an error.
Result<Milliseconds> parse_duration(std::string_view text);

// Digits with an optional unit: B, KiB, MiB, GiB, TiB (powers of 1024) or
// kB, MB, GB, TB (powers of 1000). No unit means bytes.
Result<std::uint64_t> parse_size(std::string_view text);

// The shortest exact spelling ("1m30s", "250ms", "0s"): used in messages and status output.
std::string format_duration(Milliseconds duration);

// Exact when the size is a whole number of the unit ("64KiB"), else bytes.
std::string format_size(std::uint64_t bytes);

}  // namespace scgi
