// Builds SCGI requests: for tests, the benchmark's load generator and sample
// clients. The proxy forwards the client's pairs as read (proxy/src/forwarded_head.hpp).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scgi {

using OwnedHeader = std::pair<std::string, std::string>;

// "len:name\0value\0...," with the pairs exactly as given, in order.
std::string encode_header(const std::vector<OwnedHeader>& pairs);

// A valid request: CONTENT_LENGTH (the body's size) first, SCGI=1 second,
// then `headers`, then the body.
std::string make_request(const std::vector<OwnedHeader>& headers, std::string_view body = {});

}  // namespace scgi
