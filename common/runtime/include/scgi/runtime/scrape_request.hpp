// The HTTP side of /metrics: where a request head ends, what it asks for, and
// the response it gets. Pure functions; the server (metrics_server.hpp) does
// the input and output.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace scgi {

// A request head longer than this gets 431 and the connection is closed.
inline constexpr std::size_t kMaxScrapeHeadBytes = 8192;

// Where the head ends in what a client sent (just past its empty line,
// "\r\n\r\n" or a bare "\n\n"), or std::string_view::npos while it has not.
std::size_t end_of_request_head(std::string_view received);

// What a request head gets: 200 for GET or HEAD of /metrics (any query
// string), 404 for another path, 405 for another method, 400 for a request
// line that is not HTTP/1.x.
struct ScrapeAnswer {
  int status = 400;
  bool head_only = false;  // HEAD: the headers without the body
};
ScrapeAnswer answer_scrape(std::string_view head);

// The whole response: status line, headers (Connection: close: one request
// per connection) and, unless head_only, the body. `metrics_text` is the body
// of a 200; the others get a one-line reason.
std::string scrape_response(const ScrapeAnswer& answer, std::string_view metrics_text);

}  // namespace scgi
