// Fuzz target for RequestParser: the same bytes fed whole, in two pieces or
// one byte at a time give the same outcome, and that outcome agrees with a
// plain whole-buffer reading of docs/design.md's "SCGI in" rules. And for
// what the proxy forwards (proxy/src/forwarded_head.cpp): from any valid
// header, with any settings, a valid header whose pairs are the client's
// (less those it may not set), in order, then the added ones.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "forwarded_head.hpp"
#include "fuzz_check.hpp"
#include "scgi/request_parser.hpp"

namespace {

using scgi::RequestError;
using scgi::RequestLimits;
using scgi::RequestParser;
using Status = RequestParser::Status;

constexpr std::string_view kContentLength = "CONTENT_LENGTH";
constexpr std::string_view kScgi = "SCGI";

// The defaults, and limits small enough that short inputs cross them.
constexpr RequestLimits kDefaultLimits{};
constexpr RequestLimits kTightLimits{64, 64};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Where to cut the input in two: derived from its bytes, so a crash replays.
std::size_t cut_point(std::string_view data) {
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (char c : data)
    hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
  return hash % (data.size() + 1);
}

// What the rules say about a whole input, worked out without the parser.
struct Verdict {
  Status status = Status::need_more;
  std::size_t header_size = 0;        // when complete
  std::vector<RequestError> allowed;  // when error: every rule the input breaks
};

Verdict broken(std::vector<RequestError> rules) {
  return {Status::error, 0, std::move(rules)};
}

// Every rule a whole header block breaks; empty when it is valid.
std::vector<RequestError> block_violations(std::string_view block, const RequestLimits& limits) {
  if (block.empty()) return {RequestError::content_length_not_first};
  std::vector<RequestError> rules;
  if (block.back() != '\0') rules.push_back(RequestError::block_not_terminated);
  if (std::count(block.begin(), block.end(), '\0') % 2 != 0)
    rules.push_back(RequestError::odd_fields);
  if (!rules.empty()) return rules;

  std::vector<std::string_view> fields;
  for (std::size_t pos = 0; pos < block.size();) {
    const std::size_t end = block.find('\0', pos);
    fields.push_back(block.substr(pos, end - pos));
    pos = end + 1;
  }
  bool content_length_valid = false;
  std::uint64_t content_length = 0;
  int scgi_count = 0;
  for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
    const std::string_view name = fields[i];
    const std::string_view value = fields[i + 1];
    if (name.empty()) rules.push_back(RequestError::empty_name);
    if (i == 0) {
      if (name != kContentLength) {
        rules.push_back(RequestError::content_length_not_first);
      } else if (value.empty()) {
        rules.push_back(RequestError::content_length_empty);
      } else if (!std::all_of(value.begin(), value.end(), is_digit)) {
        rules.push_back(RequestError::content_length_not_digits);
      } else if (value.size() > 1 && value.front() == '0') {
        rules.push_back(RequestError::content_length_leading_zero);
      } else if (std::from_chars(value.data(), value.data() + value.size(), content_length).ec !=
                 std::errc{}) {
        rules.push_back(RequestError::content_length_overflow);
      } else {
        content_length_valid = true;
      }
    } else if (name == kContentLength) {
      rules.push_back(RequestError::content_length_repeated);
    } else if (name == kScgi) {
      ++scgi_count;
      if (value != "1") rules.push_back(RequestError::scgi_not_one);
    }
  }
  if (scgi_count == 0) rules.push_back(RequestError::scgi_missing);
  if (scgi_count > 1) rules.push_back(RequestError::scgi_repeated);
  if (content_length_valid && limits.max_body_bytes != 0 && content_length > limits.max_body_bytes)
    rules.push_back(RequestError::body_too_large);
  return rules;
}

Verdict judge(std::string_view data, const RequestLimits& limits) {
  // "len:" with a decimal length, no sign, no leading zero, at most max_header.
  std::size_t colon = 0;
  std::uint64_t length = 0;
  for (;; ++colon) {
    if (colon == data.size()) return {};
    const char c = data[colon];
    if (c == ':') {
      if (colon == 0) return broken({RequestError::not_scgi});
      break;
    }
    if (!is_digit(c))
      return broken({colon == 0 ? RequestError::not_scgi : RequestError::length_bad_character});
    if (colon == 1 && data[0] == '0') return broken({RequestError::length_leading_zero});
    length = length * 10 + static_cast<std::uint64_t>(c - '0');
    if (length > limits.max_header_bytes) return broken({RequestError::header_too_large});
  }
  const std::size_t block_start = colon + 1;
  if (data.size() - block_start < length) return {};
  auto rules = block_violations(data.substr(block_start, length), limits);
  if (!rules.empty()) return broken(std::move(rules));
  const std::size_t comma = block_start + length;
  if (comma == data.size()) return {};
  if (data[comma] != ',') return broken({RequestError::missing_comma});
  return {Status::complete, comma + 1, {}};
}

// What a parser ended with, copied out so that parsers can be compared.
struct Outcome {
  Status status;
  RequestError error;
  std::size_t consumed;
  std::string raw_header;
  std::vector<std::pair<std::string, std::string>> headers;
  std::uint64_t content_length;

  bool operator==(const Outcome&) const = default;
};

bool points_at(std::string_view view, const std::string& raw, std::size_t offset) {
  return view.data() == raw.data() + offset;
}

// A complete header: the pairs are views that tile raw_header()'s block in
// order, and they obey the rules.
void check_complete(const RequestParser& parser, const RequestLimits& limits) {
  const std::string& raw = parser.raw_header();
  const auto& headers = parser.headers();
  FUZZ_CHECK(parser.error() == RequestError::none);
  FUZZ_CHECK(!headers.empty());
  FUZZ_CHECK(raw.size() >= 3 && raw.back() == ',');
  const std::size_t colon = raw.find(':');
  FUZZ_CHECK(colon != std::string::npos && colon > 0);
  const std::size_t block_length = raw.size() - colon - 2;
  FUZZ_CHECK(raw.substr(0, colon) == std::to_string(block_length));
  FUZZ_CHECK(block_length <= limits.max_header_bytes);

  std::size_t offset = colon + 1;
  int scgi_count = 0;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const auto& [name, value] = headers[i];
    FUZZ_CHECK(!name.empty());
    FUZZ_CHECK(points_at(name, raw, offset));
    offset += name.size();
    FUZZ_CHECK(offset < raw.size() && raw[offset] == '\0');
    ++offset;
    FUZZ_CHECK(points_at(value, raw, offset));
    offset += value.size();
    FUZZ_CHECK(offset < raw.size() && raw[offset] == '\0');
    ++offset;
    FUZZ_CHECK(name.find('\0') == std::string_view::npos);
    FUZZ_CHECK(value.find('\0') == std::string_view::npos);
    FUZZ_CHECK((name == kContentLength) == (i == 0));
    if (name == kScgi) {
      ++scgi_count;
      FUZZ_CHECK(value == "1");
    }
  }
  FUZZ_CHECK(offset == raw.size() - 1);
  FUZZ_CHECK(scgi_count == 1);
  FUZZ_CHECK(parser.find(kScgi) == "1");

  const std::string_view digits = headers.front().second;
  std::uint64_t content_length = 0;
  const auto parsed = std::from_chars(digits.data(), digits.data() + digits.size(), content_length);
  FUZZ_CHECK(!digits.empty() && parsed.ec == std::errc{} &&
             parsed.ptr == digits.data() + digits.size());
  FUZZ_CHECK(parser.content_length() == content_length);
  FUZZ_CHECK(parser.find(kContentLength) == digits);
  FUZZ_CHECK(limits.max_body_bytes == 0 || content_length <= limits.max_body_bytes);
}

void check_error(const RequestParser& parser) {
  const RequestError error = parser.error();
  FUZZ_CHECK(error != RequestError::none);
  FUZZ_CHECK(parser.headers().empty());
  FUZZ_CHECK(!scgi::describe(error).empty());
  FUZZ_CHECK(!scgi::error_name(error).empty());
  const int status = scgi::http_status(error);
  FUZZ_CHECK(status == (error == RequestError::header_too_large ? 431
                        : error == RequestError::body_too_large ? 413
                                                                : 400));
}

// Feeds `data` cut at `cuts` (ascending), checking each step.
Outcome feed_in_pieces(std::string_view data, const RequestLimits& limits,
                       const std::vector<std::size_t>& cuts) {
  RequestParser parser(limits);
  std::size_t consumed = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t end = i < cuts.size() ? cuts[i] : data.size();
    const std::string_view piece = data.substr(start, end - start);
    const Status before = parser.status();
    const auto result = parser.feed(piece);
    FUZZ_CHECK(result.status == parser.status());
    FUZZ_CHECK(result.consumed <= piece.size());
    if (before != Status::need_more) {
      // After the outcome nothing more is consumed, and the outcome stays.
      FUZZ_CHECK(result.consumed == 0 && result.status == before);
    } else if (result.status == Status::need_more) {
      FUZZ_CHECK(result.consumed == piece.size());
    }
    consumed += result.consumed;
    start = end;
  }
  // An empty piece, and a piece after the outcome, change nothing.
  const Status last = parser.status();
  const auto empty = parser.feed({});
  FUZZ_CHECK(empty.consumed == 0 && empty.status == last);
  if (last != Status::need_more) {
    const auto more = parser.feed(",");
    FUZZ_CHECK(more.consumed == 0 && more.status == last);
  }

  const std::string& raw = parser.raw_header();
  FUZZ_CHECK(raw.size() == consumed);
  FUZZ_CHECK(raw == data.substr(0, consumed));
  if (last == Status::complete) check_complete(parser, limits);
  if (last == Status::error) check_error(parser);
  if (last == Status::need_more) {
    FUZZ_CHECK(parser.error() == RequestError::none);
    FUZZ_CHECK(consumed == data.size());
  }

  Outcome outcome{last, parser.error(), consumed, raw, {}, parser.content_length()};
  for (const auto& [name, value] : parser.headers())
    outcome.headers.emplace_back(name, value);
  if (last != Status::complete) outcome.content_length = 0;  // only meaningful when complete
  return outcome;
}

// The header forwarded from a complete one parses again, whole, to the
// client's pairs (the proxy's own variables and, when replaced, traceparents
// left out), then what the settings add.
void check_forwarded(const RequestParser& client) {
  using scgi::proxy::ForwardedHead;
  for (const bool queue_time : {false, true}) {
    for (const bool create : {false, true}) {
      ForwardedHead head;
      head.plan(client, {.queue_time = queue_time, .create_traceparent = create});
      std::string bytes;
      const auto accepted = std::chrono::system_clock::time_point(std::chrono::seconds(1));
      for (const std::string_view piece : head.pieces(accepted, std::chrono::microseconds(7)))
        bytes.append(piece);
      RequestParser forwarded;
      const auto fed = forwarded.feed(bytes);
      FUZZ_CHECK(fed.status == Status::complete);
      FUZZ_CHECK(fed.consumed == bytes.size());
      if (!queue_time && !create) FUZZ_CHECK(bytes == client.raw_header());
      FUZZ_CHECK(forwarded.content_length() == client.content_length());

      const bool created =
          !head.trace_id().empty() &&
          scgi::proxy::trace_id_of(forwarded.find("HTTP_TRACEPARENT")) == head.trace_id() &&
          forwarded.find("HTTP_TRACEPARENT") != client.find("HTTP_TRACEPARENT");
      std::vector<scgi::HeaderPair> kept;
      for (const auto& pair : client.headers()) {
        if (queue_time &&
            (pair.first == "SCGI_QUEUE_WAIT_US" || pair.first == "HTTP_X_REQUEST_START"))
          continue;
        if (created && (pair.first == "HTTP_TRACEPARENT" || pair.first == "HTTP_TRACESTATE"))
          continue;
        kept.push_back(pair);
      }
      const auto& sent = forwarded.headers();
      FUZZ_CHECK(sent.size() >= kept.size());
      FUZZ_CHECK(std::equal(kept.begin(), kept.end(), sent.begin()));
      int queue_waits = 0;
      for (const auto& pair : sent)
        queue_waits += pair.first == "SCGI_QUEUE_WAIT_US" && pair.second == "7";
      if (queue_time) FUZZ_CHECK(queue_waits == 1);
      if (queue_time) FUZZ_CHECK(forwarded.find("HTTP_X_REQUEST_START") == "t=1000000");
      if (create) FUZZ_CHECK(scgi::proxy::valid_traceparent(forwarded.find("HTTP_TRACEPARENT")));
    }
  }
}

void check_limits(std::string_view data, const RequestLimits& limits) {
  const Outcome whole = feed_in_pieces(data, limits, {});
  const Outcome halves = feed_in_pieces(data, limits, {cut_point(data)});
  std::vector<std::size_t> every_byte;
  for (std::size_t i = 1; i < data.size(); ++i)
    every_byte.push_back(i);
  const Outcome bytes = feed_in_pieces(data, limits, every_byte);
  FUZZ_CHECK(whole == halves);
  FUZZ_CHECK(whole == bytes);

  const Verdict verdict = judge(data, limits);
  FUZZ_CHECK(whole.status == verdict.status);
  if (whole.status == Status::complete) {
    RequestParser client(limits);
    client.feed(data);
    check_forwarded(client);
  }
  if (verdict.status == Status::complete) FUZZ_CHECK(whole.consumed == verdict.header_size);
  if (verdict.status == Status::error) {
    FUZZ_CHECK(std::find(verdict.allowed.begin(), verdict.allowed.end(), whole.error) !=
               verdict.allowed.end());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_limits(input, kDefaultLimits);
  check_limits(input, kTightLimits);
  return 0;
}
