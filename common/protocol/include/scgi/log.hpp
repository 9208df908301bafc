// The daemons' own log: one line per event on stderr ("2026-11-24T20:10:28.123Z
// warn message"), each written with a single write() so that lines from
// several threads never interleave.
#pragma once

#include <fmt/format.h>
#include <chrono>

#include <exception>
#include <functional>
#include <string>
#include <string_view>

namespace scgi {

enum class LogLevel { debug, info, warn, error };

void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
void write_log_line(LogLevel level, std::string_view message);

template <class... Args>
void log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (log_enabled(level)) write_log_line(level, fmt::format(format, std::forward<Args>(args)...));
}

template <class... Args>
void log_info(fmt::format_string<Args...> format, Args&&... args) {
  log(LogLevel::info, format, std::forward<Args>(args)...);
}
template <class... Args>
void log_warn(fmt::format_string<Args...> format, Args&&... args) {
  log(LogLevel::warn, format, std::forward<Args>(args)...);
}
template <class... Args>
void log_error(fmt::format_string<Args...> format, Args&&... args) {
  log(LogLevel::error, format, std::forward<Args>(args)...);
}

// A completion handler for asio::co_spawn that logs what escaped the
// coroutine ("WHAT failed: reason") instead of dropping it as `detached` does.
std::function<void(std::exception_ptr)> log_failure(std::string what);

// "2026-11-24T20:10:28.123Z": UTC with milliseconds, for every log the product writes.
std::string utc_timestamp();
std::string utc_timestamp(std::chrono::system_clock::time_point time);

// Untrusted text (a REQUEST_URI, a header, anything a client or worker sent)
// as it may appear in a log line: in double quotes, with control characters,
// '"' and '\\' escaped C-style (\n, \", \\, \x1b) and every byte that is not
// part of valid UTF-8 as \xNN. A value can then neither end a line, forge
// another, nor send escape sequences to a terminal.
std::string quote_for_log(std::string_view text);

// The length of the valid UTF-8 sequence that starts `text` (1 to 4), or 0
// when it does not start with one (a stray, overlong or truncated sequence,
// a surrogate, or a code point past U+10FFFF).
std::size_t utf8_sequence_length(std::string_view text);
// `text` starts with a C1 control character (U+0080 to U+009F) in UTF-8.
bool is_c1_control(std::string_view text);

// Writes all of `bytes` to `fd` with as few write() calls as the kernel allows.
void write_fully(int fd, std::string_view bytes);

}  // namespace scgi
