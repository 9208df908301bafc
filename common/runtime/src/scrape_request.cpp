#include "scgi/runtime/scrape_request.hpp"

#include <fmt/format.h>

namespace scgi {
namespace {

std::string_view reason_of(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    default:
      return "Bad Request";
  }
}

}  // namespace

std::size_t end_of_request_head(std::string_view received) {
  for (std::size_t at = received.find('\n'); at != std::string_view::npos;
       at = received.find('\n', at + 1)) {
    if (at + 1 < received.size() && received[at + 1] == '\n') return at + 2;
    if (at + 2 < received.size() && received[at + 1] == '\r' && received[at + 2] == '\n')
      return at + 3;
  }
  return std::string_view::npos;
}

ScrapeAnswer answer_scrape(std::string_view head) {
  if (head.size() > kMaxScrapeHeadBytes) return {.status = 431};
  const std::string_view line = head.substr(0, head.find_first_of("\r\n"));
  const auto first_space = line.find(' ');
  const auto last_space = line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == last_space) return {.status = 400};
  const std::string_view method = line.substr(0, first_space);
  const std::string_view target = line.substr(first_space + 1, last_space - first_space - 1);
  const std::string_view version = line.substr(last_space + 1);
  if (!version.starts_with("HTTP/1.") || version.size() != 8 || target.empty() ||
      target.find(' ') != std::string_view::npos)
    return {.status = 400};
  if (target.substr(0, target.find('?')) != "/metrics") return {.status = 404};
  if (method == "GET") return {.status = 200};
  if (method == "HEAD") return {.status = 200, .head_only = true};
  return {.status = 405};
}

std::string scrape_response(const ScrapeAnswer& answer, std::string_view metrics_text) {
  const bool ok = answer.status == 200;
  const std::string reason_line =
      ok ? std::string() : fmt::format("{}\n", reason_of(answer.status));
  const std::string_view body = ok ? metrics_text : std::string_view(reason_line);
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
      answer.status, reason_of(answer.status),
      ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8", body.size(),
      answer.status == 405 ? "Allow: GET, HEAD\r\n" : "");
  if (!answer.head_only) out.append(body);
  return out;
}

}  // namespace scgi
