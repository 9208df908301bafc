#include "scgi/error_response.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace scgi {
namespace {

constexpr std::pair<int, std::string_view> kReasons[] = {
    {200, "OK"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {307, "Temporary Redirect"},
    {400, "Bad Request"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

}  // namespace

std::string_view reason_phrase(int status) {
  const auto* row = std::find_if(std::begin(kReasons), std::end(kReasons),
                                 [status](const auto& r) { return r.first == status; });
  return row == std::end(kReasons) ? std::string_view("Unknown") : row->second;
}

std::string error_response(int status, std::string_view detail,
                           std::optional<int> retry_after_seconds) {
  std::string body = fmt::format("{} {}\n", status, reason_phrase(status));
  if (!detail.empty()) body += fmt::format("{}\n", detail);
  std::string head = fmt::format(
      "Status: {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n", status,
      reason_phrase(status), body.size());
  if (retry_after_seconds) head += fmt::format("Retry-After: {}\r\n", *retry_after_seconds);
  return head + "\r\n" + body;
}

}  // namespace scgi
