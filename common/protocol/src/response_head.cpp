#include "scgi/response_head.hpp"

#include <algorithm>
#include <cctype>

namespace scgi {
namespace {

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         std::equal(prefix.begin(), prefix.end(), text.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim_left(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t'))
    text.remove_prefix(1);
  return text;
}

}  // namespace

ResponseHeadReader::ResponseHeadReader(std::size_t max_head_bytes)
    : max_head_bytes_(max_head_bytes) {
  line_.reserve(kKeptLineBytes);
}

ResponseHeadReader::Status ResponseHeadReader::feed(std::string_view piece) {
  // A line at a time: only the start of each line is kept, the rest counted.
  while (!piece.empty() && status_ == Status::need_more) {
    const std::size_t newline = piece.find('\n');
    const std::size_t length = newline == std::string_view::npos ? piece.size() : newline;
    const std::size_t consumed = length + (newline == std::string_view::npos ? 0 : 1);
    if (consumed > max_head_bytes_ - head_bytes_) {
      status_ = Status::too_long;
      break;
    }
    head_bytes_ += consumed;
    const std::size_t keep = std::min(length, kKeptLineBytes - line_.size());
    line_.append(piece.data(), keep);
    line_length_ += length;
    if (newline != std::string_view::npos) end_line();
    piece.remove_prefix(consumed);
  }
  return status_;
}

ResponseHeadReader::Status ResponseHeadReader::finish() {
  if (status_ == Status::need_more) status_ = Status::malformed;
  return status_;
}

int ResponseHeadReader::status_code() const {
  if (status_ != Status::complete) return 502;
  if (nph_status_ != 0) return nph_status_;
  if (status_header_ != 0) return status_header_;
  return location_ ? 302 : 200;
}

void ResponseHeadReader::end_line() {
  std::string_view line = line_;
  // CRLF and bare LF both end a line; a long line's CR was never kept.
  if (line_length_ <= kKeptLineBytes && !line.empty() && line.back() == '\r') line.remove_suffix(1);
  const bool blank = line_length_ == 0 || (line_length_ == 1 && line.empty());
  if (blank) {
    status_ = Status::complete;
  } else if (first_line_ && line.starts_with("HTTP/")) {
    // NPH: "HTTP/1.1 201 Created"
    const auto space = line.find(' ');
    nph_status_ =
        space == std::string_view::npos ? -1 : parse_status_digits(line.substr(space + 1));
    if (nph_status_ < 0) status_ = Status::malformed;
  } else {
    read_header_line(line);
  }
  first_line_ = false;
  line_.clear();
  line_length_ = 0;
}

void ResponseHeadReader::read_header_line(std::string_view line) {
  if (starts_with_nocase(line, "Status:")) {
    status_header_ = parse_status_digits(trim_left(line.substr(7)));
    if (status_header_ < 0) status_ = Status::malformed;
  } else if (starts_with_nocase(line, "Location:")) {
    location_ = true;
  }
}

// Three digits (100-999) followed by the end of the line or a space; -1 otherwise.
int ResponseHeadReader::parse_status_digits(std::string_view text) {
  if (text.size() < 3 || !is_digit(text[0]) || !is_digit(text[1]) || !is_digit(text[2])) return -1;
  if (text.size() > 3 && text[3] != ' ' && text[3] != '\t') return -1;
  const int code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
  return code >= 100 ? code : -1;
}

}  // namespace scgi
