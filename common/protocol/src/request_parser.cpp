#include "scgi/request_parser.hpp"

#include <algorithm>
#include <limits>

namespace scgi {
namespace {

constexpr std::string_view kContentLength = "CONTENT_LENGTH";
constexpr std::string_view kScgi = "SCGI";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

struct ErrorInfo {
  RequestError error;
  std::string_view name;
  int status;
  std::string_view description;
};

// One row per outcome: its label, the status the client gets, and the rule it broke.
constexpr ErrorInfo kErrors[] = {
    {RequestError::none, "none", 200, "no error"},
    {RequestError::not_scgi, "not_scgi", 400,
     "request does not start with a netstring length (digits, then ':'); is an HTTP client "
     "talking to the SCGI port?"},
    {RequestError::length_leading_zero, "length_leading_zero", 400,
     "netstring length has a leading zero"},
    {RequestError::length_bad_character, "length_bad_character", 400,
     "netstring length has a character other than digits before ':'"},
    {RequestError::header_too_large, "header_too_large", 431,
     "SCGI header is larger than max_header"},
    {RequestError::missing_comma, "missing_comma", 400, "header netstring is not followed by ','"},
    {RequestError::block_not_terminated, "block_not_terminated", 400,
     "header block does not end with a NUL byte"},
    {RequestError::odd_fields, "odd_fields", 400, "header block has a name without a value"},
    {RequestError::empty_name, "empty_name", 400, "header block has an empty name"},
    {RequestError::content_length_not_first, "content_length_not_first", 400,
     "first header is not CONTENT_LENGTH"},
    {RequestError::content_length_empty, "content_length_empty", 400, "CONTENT_LENGTH is empty"},
    {RequestError::content_length_not_digits, "content_length_not_digits", 400,
     "CONTENT_LENGTH is not all digits"},
    {RequestError::content_length_leading_zero, "content_length_leading_zero", 400,
     "CONTENT_LENGTH has a leading zero (workers disagree on such a value: some read it as "
     "octal)"},
    {RequestError::content_length_overflow, "content_length_overflow", 400,
     "CONTENT_LENGTH is too large a number"},
    {RequestError::content_length_repeated, "content_length_repeated", 400,
     "CONTENT_LENGTH appears twice"},
    {RequestError::scgi_missing, "scgi_missing", 400,
     "SCGI=1 header is missing (nginx sends it only with `include scgi_params;` in the "
     "location)"},
    {RequestError::scgi_not_one, "scgi_not_one", 400, "SCGI header is not \"1\""},
    {RequestError::scgi_repeated, "scgi_repeated", 400, "SCGI header appears twice"},
    {RequestError::body_too_large, "body_too_large", 413, "CONTENT_LENGTH is larger than max_body"},
};

const ErrorInfo& info(RequestError error) {
  const auto* row = std::find_if(std::begin(kErrors), std::end(kErrors),
                                 [error](const ErrorInfo& e) { return e.error == error; });
  return *row;
}

// Parses all-digit text into `value`; false on overflow.
bool parse_content_length(std::string_view digits, std::uint64_t& value) {
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  value = 0;
  for (char c : digits) {
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (kMax - digit) / 10) return false;
    value = value * 10 + digit;
  }
  return true;
}

}  // namespace

std::string_view describe(RequestError error) {
  return info(error).description;
}
int http_status(RequestError error) {
  return info(error).status;
}
std::string_view error_name(RequestError error) {
  return info(error).name;
}

RequestParser::RequestParser(RequestLimits limits) : limits_(limits) {}

RequestParser::Status RequestParser::fail(RequestError error) {
  error_ = error;
  status_ = Status::error;
  headers_.clear();
  return status_;
}

RequestParser::FeedResult RequestParser::feed(std::string_view piece) {
  std::size_t used = 0;
  while (status_ == Status::need_more && used < piece.size()) {
    switch (phase_) {
      case Phase::length: {
        const char c = piece[used++];
        raw_.push_back(c);
        on_length_byte(c);
        break;
      }
      case Phase::block: {
        const std::size_t missing = block_start_ + block_length_ - raw_.size();
        const std::size_t take = std::min(missing, piece.size() - used);
        raw_.append(piece.substr(used, take));
        used += take;
        if (take == missing) validate_block();
        break;
      }
      case Phase::comma: {
        const char c = piece[used++];
        raw_.push_back(c);
        if (c != ',') {
          fail(RequestError::missing_comma);
        } else {
          phase_ = Phase::done;
          status_ = Status::complete;
        }
        break;
      }
      case Phase::done:
        break;
    }
  }
  return {status_, used};
}

RequestParser::Status RequestParser::on_length_byte(char c) {
  if (c == ':') {
    if (length_digits_ == 0) return fail(RequestError::not_scgi);
    phase_ = Phase::block;
    block_start_ = raw_.size();
    // Reserved once so that the header views never move (the comma is the last append).
    raw_.reserve(block_start_ + block_length_ + 1);
    if (block_length_ == 0) return validate_block();
    return status_;
  }
  if (!is_digit(c))
    return fail(length_digits_ == 0 ? RequestError::not_scgi : RequestError::length_bad_character);
  if (length_digits_ == 1 && raw_.front() == '0') return fail(RequestError::length_leading_zero);
  ++length_digits_;
  // Checked per digit, so an oversized header is refused before any of it is read.
  const auto digit = static_cast<std::uint64_t>(c - '0');
  const std::uint64_t limit = limits_.max_header_bytes;
  if (block_length_ > limit / 10 || block_length_ * 10 + digit > limit)
    return fail(RequestError::header_too_large);
  block_length_ = block_length_ * 10 + digit;
  return status_;
}

RequestParser::Status RequestParser::validate_block() {
  phase_ = Phase::comma;
  const std::string_view block = std::string_view(raw_).substr(block_start_, block_length_);
  if (block.empty()) return fail(RequestError::content_length_not_first);
  if (block.back() != '\0') return fail(RequestError::block_not_terminated);
  if (std::count(block.begin(), block.end(), '\0') % 2 != 0) return fail(RequestError::odd_fields);

  bool seen_scgi = false;
  std::size_t pos = 0;
  while (pos < block.size()) {
    const std::size_t name_end = block.find('\0', pos);
    const std::size_t value_end = block.find('\0', name_end + 1);
    const std::string_view name = block.substr(pos, name_end - pos);
    const std::string_view value = block.substr(name_end + 1, value_end - name_end - 1);
    pos = value_end + 1;
    if (name.empty()) return fail(RequestError::empty_name);

    if (headers_.empty()) {
      if (name != kContentLength) return fail(RequestError::content_length_not_first);
      if (value.empty()) return fail(RequestError::content_length_empty);
      if (!std::all_of(value.begin(), value.end(), is_digit))
        return fail(RequestError::content_length_not_digits);
      if (value.size() > 1 && value.front() == '0')
        return fail(RequestError::content_length_leading_zero);
      if (!parse_content_length(value, content_length_))
        return fail(RequestError::content_length_overflow);
    } else if (name == kContentLength) {
      return fail(RequestError::content_length_repeated);
    } else if (name == kScgi) {
      if (seen_scgi) return fail(RequestError::scgi_repeated);
      if (value != "1") return fail(RequestError::scgi_not_one);
      seen_scgi = true;
    }
    headers_.emplace_back(name, value);
  }
  if (!seen_scgi) return fail(RequestError::scgi_missing);
  if (limits_.max_body_bytes != 0 && content_length_ > limits_.max_body_bytes)
    return fail(RequestError::body_too_large);
  return status_;
}

std::string_view RequestParser::find(std::string_view name) const {
  for (const auto& [key, value] : headers_)
    if (key == name) return value;
  return {};
}

}  // namespace scgi
