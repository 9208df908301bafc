// The CGI responses the proxy writes itself (400, 413, 431, 502, 503, 504):
// a Status line, a short plain-text body, and Retry-After where it helps.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace scgi {

// "Not Found" for 404; "Unknown" for a code without a standard phrase.
std::string_view reason_phrase(int status);

// `detail` is one line for the person reading the body (may be empty).
std::string error_response(int status, std::string_view detail = {},
                           std::optional<int> retry_after_seconds = std::nullopt);

}  // namespace scgi
