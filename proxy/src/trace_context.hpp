// W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent`
// a request came with, checked, and new ones for requests that came without.
// The proxy records no spans: it passes the client's traceparent on, or starts
// a trace the application joins, and writes the trace id in the access log.
#pragma once

#include <array>
#include <string_view>

namespace scgi::proxy {

// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>".
inline constexpr std::size_t kTraceparentSize = 55;
inline constexpr std::size_t kTraceIdSize = 32;

// Whether `value` is a traceparent a receiver may continue: version 00 in
// exactly this shape (or a later version, at least this long, whose first 55
// characters have it), lowercase hex, ids not all zero, version not ff.
bool valid_traceparent(std::string_view value);

// A new traceparent: version 00, random trace and parent ids, flags 01
// (sampled), so that an application's parent-based sampler records it.
std::array<char, kTraceparentSize> new_traceparent();

// The trace id inside a valid traceparent.
inline std::string_view trace_id_of(std::string_view traceparent) {
  return traceparent.substr(3, kTraceIdSize);
}

}  // namespace scgi::proxy
