#include <catch2/catch.hpp>

#include <string>

#include "scgi/request_parser.hpp"
#include "scgi/request_writer.hpp"

using scgi::RequestError;
using scgi::RequestParser;
using Status = RequestParser::Status;
using namespace std::string_literals;

namespace {

// The example of the SCGI specification, byte for byte.
const std::string kSpecHeader = "70:"s + "CONTENT_LENGTH\0"s + "27\0"s + "SCGI\0"s + "1\0"s +
                                "REQUEST_METHOD\0"s + "POST\0"s + "REQUEST_URI\0"s +
                                "/deepthought\0"s + ","s;
const std::string kSpecBody = "What is the answer to life?";

// Feeds `bytes` in one piece and returns the error (none when complete).
RequestError error_of(const std::string& bytes, scgi::RequestLimits limits = {}) {
  RequestParser parser(limits);
  const auto result = parser.feed(bytes);
  if (result.status == Status::need_more) FAIL("parser still wants more bytes");
  return parser.error();
}

// A header block wrapped in a correct netstring.
std::string netstring(const std::string& block) {
  return std::to_string(block.size()) + ":" + block + ",";
}

}  // namespace

TEST_CASE("the specification's example request parses byte for byte", "[parser]") {
  REQUIRE(kSpecBody.size() == 27);
  const std::string request = kSpecHeader + kSpecBody;
  RequestParser parser;
  const auto result = parser.feed(request);
  REQUIRE(result.status == Status::complete);
  CHECK(result.consumed == kSpecHeader.size());
  CHECK(request.substr(result.consumed) == kSpecBody);
  CHECK(parser.raw_header() == kSpecHeader);
  CHECK(parser.content_length() == 27);
  REQUIRE(parser.headers().size() == 4);
  CHECK(parser.headers()[0] == scgi::HeaderPair{"CONTENT_LENGTH", "27"});
  CHECK(parser.headers()[1] == scgi::HeaderPair{"SCGI", "1"});
  CHECK(parser.headers()[2] == scgi::HeaderPair{"REQUEST_METHOD", "POST"});
  CHECK(parser.headers()[3] == scgi::HeaderPair{"REQUEST_URI", "/deepthought"});
  CHECK(parser.find("REQUEST_URI") == "/deepthought");
  CHECK(parser.find("MISSING").empty());
  CHECK(parser.error() == RequestError::none);
}

TEST_CASE("make_request writes the specification's framing", "[parser][writer]") {
  const std::string request =
      scgi::make_request({{"REQUEST_METHOD", "POST"}, {"REQUEST_URI", "/deepthought"}}, kSpecBody);
  // The spec puts SCGI second too, so the bytes are identical.
  CHECK(request == kSpecHeader + kSpecBody);
}

TEST_CASE("a request split at every byte parses the same", "[parser]") {
  const std::string request = kSpecHeader + kSpecBody;
  for (std::size_t cut = 0; cut <= request.size(); ++cut) {
    CAPTURE(cut);
    RequestParser parser;
    const auto first = parser.feed(std::string_view(request).substr(0, cut));
    std::size_t consumed = first.consumed;
    std::size_t body_offset = first.status == Status::complete ? first.consumed : 0;
    if (first.status != Status::complete) {
      REQUIRE(first.status == Status::need_more);
      REQUIRE(first.consumed == cut);
      const auto second = parser.feed(std::string_view(request).substr(cut));
      REQUIRE(second.status == Status::complete);
      consumed += second.consumed;
      body_offset = cut + second.consumed;
    }
    CHECK(consumed == kSpecHeader.size());
    CHECK(body_offset == kSpecHeader.size());
    CHECK(parser.raw_header() == kSpecHeader);
    CHECK(parser.content_length() == 27);
    CHECK(parser.headers().size() == 4);
  }
}

TEST_CASE("a request fed one byte at a time parses the same", "[parser]") {
  RequestParser parser;
  std::size_t fed = 0;
  while (parser.status() == Status::need_more) {
    REQUIRE(fed < kSpecHeader.size());
    const auto result = parser.feed(std::string_view(kSpecHeader).substr(fed, 1));
    CHECK(result.consumed == 1);
    ++fed;
  }
  CHECK(parser.status() == Status::complete);
  CHECK(fed == kSpecHeader.size());
  CHECK(parser.find("REQUEST_METHOD") == "POST");
}

TEST_CASE("a malformed request split at every byte fails the same", "[parser]") {
  const std::string bad = netstring("CONTENT_LENGTH\0"s + "0\0"s + "SCGI\0"s + "2\0"s);
  for (std::size_t cut = 0; cut <= bad.size(); ++cut) {
    CAPTURE(cut);
    RequestParser parser;
    parser.feed(std::string_view(bad).substr(0, cut));
    parser.feed(std::string_view(bad).substr(cut));
    CHECK(parser.status() == Status::error);
    CHECK(parser.error() == RequestError::scgi_not_one);
  }
}

TEST_CASE("after the outcome, further bytes are not consumed", "[parser]") {
  RequestParser parser;
  REQUIRE(parser.feed(kSpecHeader).status == Status::complete);
  const auto again = parser.feed("more body");
  CHECK(again.status == Status::complete);
  CHECK(again.consumed == 0);

  RequestParser broken;
  REQUIRE(broken.feed("GET / HTTP/1.1\r\n").status == Status::error);
  CHECK(broken.feed("Host: x\r\n").consumed == 0);
  CHECK(broken.error() == RequestError::not_scgi);
}

TEST_CASE("an empty piece changes nothing", "[parser]") {
  RequestParser parser;
  const auto result = parser.feed("");
  CHECK(result.status == Status::need_more);
  CHECK(result.consumed == 0);
}

TEST_CASE("valid variations of the header are accepted", "[parser]") {
  SECTION("empty values are allowed (nginx sends CONTENT_TYPE=)") {
    RequestParser parser;
    const auto header = scgi::make_request({{"CONTENT_TYPE", ""}, {"QUERY_STRING", ""}});
    REQUIRE(parser.feed(header).status == Status::complete);
    CHECK(parser.find("CONTENT_TYPE").empty());
    CHECK(parser.headers().size() == 4);
  }
  SECTION("repeated names other than CONTENT_LENGTH and SCGI are kept in order") {
    RequestParser parser;
    const auto header =
        scgi::make_request({{"HTTP_COOKIE", "a=1"}, {"HTTP_COOKIE", "b=2"}, {"HTTP_X_DUP", "one"}});
    REQUIRE(parser.feed(header).status == Status::complete);
    REQUIRE(parser.headers().size() == 5);
    CHECK(parser.headers()[2].second == "a=1");
    CHECK(parser.headers()[3].second == "b=2");
    CHECK(parser.find("HTTP_COOKIE") == "a=1");
  }
  SECTION("SCGI may come last (lighttpd) or anywhere after CONTENT_LENGTH") {
    RequestParser parser;
    const auto header =
        scgi::encode_header({{"CONTENT_LENGTH", "0"}, {"REQUEST_URI", "/"}, {"SCGI", "1"}});
    CHECK(parser.feed(header).status == Status::complete);
  }
  SECTION("CONTENT_LENGTH 0 alone is no leading zero") {
    RequestParser parser;
    REQUIRE(parser.feed(scgi::encode_header({{"CONTENT_LENGTH", "0"}, {"SCGI", "1"}})).status ==
            Status::complete);
    CHECK(parser.content_length() == 0);
  }
  SECTION("the largest CONTENT_LENGTH that fits 64 bits") {
    RequestParser parser;
    const auto header =
        scgi::encode_header({{"CONTENT_LENGTH", "18446744073709551615"}, {"SCGI", "1"}});
    REQUIRE(parser.feed(header).status == Status::complete);
    CHECK(parser.content_length() == 18446744073709551615ull);
  }
  SECTION("a header exactly max_header long is accepted") {
    const std::string header = scgi::encode_header({{"CONTENT_LENGTH", "0"}, {"SCGI", "1"}});
    const std::size_t block_length = header.size() - 4;  // "NN:" and ","
    REQUIRE(header.substr(0, 3) == std::to_string(block_length) + ":");
    RequestParser parser({.max_header_bytes = block_length});
    CHECK(parser.feed(header).status == Status::complete);
  }
  SECTION("a body exactly max_body long is accepted") {
    RequestParser parser({.max_body_bytes = 27});
    CHECK(parser.feed(kSpecHeader).status == Status::complete);
  }
  SECTION("bytes of any value other than NUL pass in names and values") {
    RequestParser parser;
    const auto header = scgi::make_request({{"HTTP_X\xff\x01", "\x7f\xfe,:"}});
    REQUIRE(parser.feed(header).status == Status::complete);
    CHECK(parser.headers()[2].second == "\x7f\xfe,:");
  }
}

TEST_CASE("every malformed request is rejected with the rule it broke", "[parser]") {
  struct Case {
    const char* what;
    std::string bytes;
    RequestError error;
  };
  const std::string cl0 = "CONTENT_LENGTH\0"s + "0\0"s;
  const std::string scgi1 = "SCGI\0"s + "1\0"s;
  const std::vector<Case> cases = {
      {"HTTP request line", "GET / HTTP/1.1\r\n\r\n", RequestError::not_scgi},
      {"TLS hello byte", "\x16\x03\x01", RequestError::not_scgi},
      {"colon first (no length)", ":" + cl0 + ",", RequestError::not_scgi},
      {"comma first", ",", RequestError::not_scgi},
      {"plus sign", "+" + netstring(cl0 + scgi1), RequestError::not_scgi},
      {"minus sign", "-5:", RequestError::not_scgi},
      {"space before length", " 24:", RequestError::not_scgi},
      {"NUL first", "\0"s, RequestError::not_scgi},
      {"leading zero", "024:" + cl0 + scgi1 + ",", RequestError::length_leading_zero},
      {"double zero", "00:,", RequestError::length_leading_zero},
      {"letter in length", "2x:", RequestError::length_bad_character},
      {"space in length", "2 4:", RequestError::length_bad_character},
      {"hex length", "0x18:", RequestError::length_bad_character},
      {"comma instead of colon", "24,", RequestError::length_bad_character},
      {"length overflow", "99999999999999999999999999:", RequestError::header_too_large},
      {"length above max_header", "65537:", RequestError::header_too_large},
      {"length with NUL", "2\0"s + "4:", RequestError::length_bad_character},
      {"empty block", "0:,", RequestError::content_length_not_first},
      {"missing comma", "24:" + cl0 + scgi1 + ";", RequestError::missing_comma},
      {"length too short for block", "23:" + cl0 + scgi1 + ",", RequestError::block_not_terminated},
      {"length too long for block (body byte as comma)", "25:" + cl0 + scgi1 + ",x",
       RequestError::block_not_terminated},
      {"block without NUL", netstring("CONTENT_LENGTH"), RequestError::block_not_terminated},
      {"name without value", netstring(cl0 + scgi1 + "NAME\0"s), RequestError::odd_fields},
      {"single NUL", netstring("\0"s), RequestError::odd_fields},
      {"empty name", netstring(cl0 + scgi1 + "\0"s + "value\0"s), RequestError::empty_name},
      {"empty name first", netstring("\0"s + "0\0"s + scgi1), RequestError::empty_name},
      {"SCGI first", netstring(scgi1 + cl0), RequestError::content_length_not_first},
      {"no CONTENT_LENGTH", netstring(scgi1 + "REQUEST_URI\0/\0"s),
       RequestError::content_length_not_first},
      {"lower-case content_length", netstring("content_length\0"s + "0\0"s + scgi1),
       RequestError::content_length_not_first},
      {"CONTENT_LENGTH with trailing space in name",
       netstring("CONTENT_LENGTH \0"s + "0\0"s + scgi1), RequestError::content_length_not_first},
      {"empty CONTENT_LENGTH", netstring("CONTENT_LENGTH\0\0"s + scgi1),
       RequestError::content_length_empty},
      {"negative CONTENT_LENGTH", netstring("CONTENT_LENGTH\0-1\0"s + scgi1),
       RequestError::content_length_not_digits},
      {"signed CONTENT_LENGTH", netstring("CONTENT_LENGTH\0+1\0"s + scgi1),
       RequestError::content_length_not_digits},
      {"CONTENT_LENGTH with space", netstring("CONTENT_LENGTH\0 1\0"s + scgi1),
       RequestError::content_length_not_digits},
      {"CONTENT_LENGTH with trailing space",
       netstring("CONTENT_LENGTH\0"
                 "1 \0"s +
                 scgi1),
       RequestError::content_length_not_digits},
      {"hex CONTENT_LENGTH",
       netstring("CONTENT_LENGTH\0"
                 "0x10\0"s +
                 scgi1),
       RequestError::content_length_not_digits},
      {"decimal point CONTENT_LENGTH",
       netstring("CONTENT_LENGTH\0"
                 "1.5\0"s +
                 scgi1),
       RequestError::content_length_not_digits},
      {"CONTENT_LENGTH with a leading zero",
       netstring("CONTENT_LENGTH\0"
                 "05\0"s +
                 scgi1),
       RequestError::content_length_leading_zero},
      {"CONTENT_LENGTH that octal would read as 7",
       netstring("CONTENT_LENGTH\0"
                 "007\0"s +
                 scgi1),
       RequestError::content_length_leading_zero},
      {"CONTENT_LENGTH 00", netstring("CONTENT_LENGTH\0"s + "00\0"s + scgi1),
       RequestError::content_length_leading_zero},
      {"CONTENT_LENGTH 2^64",
       netstring("CONTENT_LENGTH\0"
                 "18446744073709551616\0"s +
                 scgi1),
       RequestError::content_length_overflow},
      {"CONTENT_LENGTH huge", netstring("CONTENT_LENGTH\0"s + std::string(40, '9') + "\0"s + scgi1),
       RequestError::content_length_overflow},
      {"second CONTENT_LENGTH",
       netstring(cl0 + scgi1 +
                 "CONTENT_LENGTH\0"
                 "5\0"s),
       RequestError::content_length_repeated},
      {"second CONTENT_LENGTH with same value", netstring(cl0 + cl0 + scgi1),
       RequestError::content_length_repeated},
      {"SCGI missing", netstring(cl0 + "REQUEST_URI\0/\0"s), RequestError::scgi_missing},
      {"only CONTENT_LENGTH", netstring(cl0), RequestError::scgi_missing},
      {"lower-case scgi",
       netstring(cl0 + "scgi\0"
                       "1\0"s),
       RequestError::scgi_missing},
      {"SCGI=0",
       netstring(cl0 + "SCGI\0"
                       "0\0"s),
       RequestError::scgi_not_one},
      {"SCGI empty", netstring(cl0 + "SCGI\0\0"s), RequestError::scgi_not_one},
      {"SCGI=1.0",
       netstring(cl0 + "SCGI\0"
                       "1.0\0"s),
       RequestError::scgi_not_one},
      {"SCGI=01",
       netstring(cl0 + "SCGI\0"
                       "01\0"s),
       RequestError::scgi_not_one},
      {"second SCGI", netstring(cl0 + scgi1 + scgi1), RequestError::scgi_repeated},
      {"second SCGI with other value",
       netstring(cl0 + scgi1 +
                 "SCGI\0"
                 "2\0"s),
       RequestError::scgi_repeated},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    CHECK(error_of(c.bytes) == c.error);
  }
  CHECK(cases.size() >= 40);
}

TEST_CASE("limits: max_header is checked from the length digits alone", "[parser]") {
  RequestParser parser({.max_header_bytes = 100});
  // Only the length has arrived: the parser refuses before reading the block.
  const auto result = parser.feed("101");
  CHECK(result.status == Status::error);
  CHECK(parser.error() == RequestError::header_too_large);
  CHECK(scgi::http_status(parser.error()) == 431);

  RequestParser small({.max_header_bytes = 5});
  CHECK(small.feed("9").status == Status::error);
  RequestParser zero({.max_header_bytes = 0});
  CHECK(zero.feed("0:").status == Status::error);
  CHECK(zero.error() == RequestError::content_length_not_first);
}

TEST_CASE("limits: a body above max_body is 413", "[parser]") {
  RequestParser parser({.max_body_bytes = 26});
  CHECK(parser.feed(kSpecHeader).status == Status::error);
  CHECK(parser.error() == RequestError::body_too_large);
  CHECK(scgi::http_status(parser.error()) == 413);
}

TEST_CASE("each error has a status, a name and a description", "[parser]") {
  CHECK(scgi::http_status(RequestError::not_scgi) == 400);
  CHECK(scgi::http_status(RequestError::scgi_missing) == 400);
  CHECK(scgi::error_name(RequestError::scgi_missing) == "scgi_missing");
  CHECK(std::string(scgi::describe(RequestError::scgi_missing)).find("include scgi_params") !=
        std::string::npos);
  for (int e = static_cast<int>(RequestError::none);
       e <= static_cast<int>(RequestError::body_too_large); ++e) {
    const auto error = static_cast<RequestError>(e);
    CAPTURE(e);
    CHECK_FALSE(scgi::describe(error).empty());
    CHECK_FALSE(scgi::error_name(error).empty());
  }
}

TEST_CASE("the raw header of a failed request is what was read", "[parser]") {
  RequestParser parser;
  parser.feed("12x:rest");
  CHECK(parser.raw_header() == "12x");
  CHECK(parser.headers().empty());
}
