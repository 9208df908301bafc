// Incremental parser of an SCGI request header (the netstring before the
// body). Bytes are fed in whatever pieces a socket delivers; the parser keeps
// the raw header bytes so the proxy can forward them unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scgi {

// Every way a request header can break the rules of docs/design.md's "SCGI in".
enum class RequestError {
  none,
  not_scgi,                     // first byte is not a digit (e.g. an HTTP client on the SCGI port)
  length_leading_zero,          // "05:" (the netstring length has no leading zeros)
  length_bad_character,         // something other than digits before ':'
  header_too_large,             // netstring length above max_header
  missing_comma,                // the byte after the header block is not ','
  block_not_terminated,         // the block does not end with NUL
  odd_fields,                   // a name without its value
  empty_name,                   // a pair whose name is empty
  content_length_not_first,     // the first pair is not CONTENT_LENGTH (or the block is empty)
  content_length_empty,         // CONTENT_LENGTH=""
  content_length_not_digits,    // CONTENT_LENGTH with a sign, space or letter
  content_length_leading_zero,  // "05": workers disagree on it (some read octal), so refused
  content_length_overflow,      // CONTENT_LENGTH beyond 2^64-1
  content_length_repeated,      // a second CONTENT_LENGTH pair
  scgi_missing,                 // no SCGI pair (nginx without `include scgi_params`)
  scgi_not_one,                 // SCGI with a value other than "1"
  scgi_repeated,                // a second SCGI pair
  body_too_large,               // CONTENT_LENGTH above max_body
};

// The rule that was broken, for the log line of a rejected request.
std::string_view describe(RequestError error);
// The HTTP status the proxy answers with: 400, 413 or 431.
int http_status(RequestError error);
// Short machine-friendly name ("header_too_large"), for logs and metrics labels.
std::string_view error_name(RequestError error);

struct RequestLimits {
  std::size_t max_header_bytes = 64 * 1024;  // the netstring length, without "NNN:" and ","
  std::uint64_t max_body_bytes = 0;          // 0 = unlimited
};

using HeaderPair = std::pair<std::string_view, std::string_view>;

class RequestParser {
 public:
  enum class Status { need_more, complete, error };

  struct FeedResult {
    Status status;
    std::size_t consumed;  // bytes of the fed piece that belong to the header
  };

  explicit RequestParser(RequestLimits limits = {});
  // The header views point into this object: it stays where it was made.
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Feeds the next piece. After `complete`, the bytes of the piece past
  // `consumed` are the start of the body. After `complete` or `error`, further
  // calls consume nothing and repeat the outcome.
  FeedResult feed(std::string_view piece);
  Status status() const { return status_; }

  // The raw header ("len:block,"), exactly as received: forward this.
  const std::string& raw_header() const { return raw_; }

  // Valid once complete: the pairs' bytes ("NAME\0value\0..."), without the
  // netstring's length and comma; a view into raw_header().
  std::string_view block() const {
    return std::string_view(raw_).substr(block_start_, block_length_);
  }
  // Valid once complete: the pairs in order, as views into raw_header().
  const std::vector<HeaderPair>& headers() const { return headers_; }
  std::uint64_t content_length() const { return content_length_; }
  // The first value of `name`, or an empty view when absent.
  std::string_view find(std::string_view name) const;

  RequestError error() const { return error_; }

 private:
  enum class Phase { length, block, comma, done };

  Status fail(RequestError error);
  Status on_length_byte(char c);
  Status validate_block();

  RequestLimits limits_;
  Phase phase_ = Phase::length;
  Status status_ = Status::need_more;
  RequestError error_ = RequestError::none;
  std::string raw_;
  std::size_t length_digits_ = 0;
  std::uint64_t block_length_ = 0;
  std::size_t block_start_ = 0;  // offset of the block in raw_
  std::vector<HeaderPair> headers_;
  std::uint64_t content_length_ = 0;
};

}  // namespace scgi
