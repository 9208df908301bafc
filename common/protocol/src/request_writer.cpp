#include "scgi/request_writer.hpp"

namespace scgi {

std::string encode_header(const std::vector<OwnedHeader>& pairs) {
  std::string block;
  for (const auto& [name, value] : pairs) {
    block += name;
    block += '\0';
    block += value;
    block += '\0';
  }
  return std::to_string(block.size()) + ":" + block + ",";
}

std::string make_request(const std::vector<OwnedHeader>& headers, std::string_view body) {
  std::vector<OwnedHeader> pairs;
  pairs.reserve(headers.size() + 2);
  pairs.emplace_back("CONTENT_LENGTH", std::to_string(body.size()));
  pairs.emplace_back("SCGI", "1");
  pairs.insert(pairs.end(), headers.begin(), headers.end());
  std::string request = encode_header(pairs);
  request.append(body);
  return request;
}

}  // namespace scgi
