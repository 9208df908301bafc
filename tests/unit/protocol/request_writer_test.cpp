#include <catch2/catch.hpp>

#include <string>

#include "scgi/error_response.hpp"
#include "scgi/request_parser.hpp"
#include "scgi/request_writer.hpp"
#include "scgi/response_head.hpp"

using namespace std::string_literals;

TEST_CASE("encode_header writes the pairs as given", "[writer]") {
  CHECK(scgi::encode_header({}) == "0:,");
  CHECK(scgi::encode_header({{"A", ""}}) == "3:A\0\0,"s);
  CHECK(scgi::encode_header({{"A", "b"}, {"A", "c"}}) == "8:A\0b\0A\0c\0,"s);
}

TEST_CASE("make_request round-trips through the parser", "[writer][parser]") {
  const std::string body(100'000, '\0');
  const std::string request = scgi::make_request({{"REQUEST_URI", "/upload"}}, body);
  scgi::RequestParser parser({.max_header_bytes = 1024});
  const auto result = parser.feed(request);
  REQUIRE(result.status == scgi::RequestParser::Status::complete);
  CHECK(parser.content_length() == body.size());
  CHECK(request.size() - result.consumed == body.size());
  CHECK(parser.find("REQUEST_URI") == "/upload");
}

TEST_CASE("the proxy's error responses are CGI responses with the right status", "[writer]") {
  const std::string response = scgi::error_response(503, "queue full", 2);
  CHECK(response.starts_with("Status: 503 Service Unavailable\r\n"));
  CHECK(response.find("\r\nRetry-After: 2\r\n") != std::string::npos);
  CHECK(response.find("Content-Type: text/plain") != std::string::npos);
  const auto body_start = response.find("\r\n\r\n") + 4;
  const std::string body = response.substr(body_start);
  CHECK(body == "503 Service Unavailable\nqueue full\n");
  CHECK(response.find("Content-Length: " + std::to_string(body.size()) + "\r\n") !=
        std::string::npos);

  for (int status : {400, 413, 431, 502, 503, 504}) {
    CAPTURE(status);
    scgi::ResponseHeadReader reader;
    reader.feed(scgi::error_response(status));
    CHECK(reader.status_code() == status);
  }
  CHECK(scgi::error_response(400).find("Retry-After") == std::string::npos);
  CHECK(scgi::reason_phrase(431) == "Request Header Fields Too Large");
  CHECK(scgi::reason_phrase(299) == "Unknown");
}
