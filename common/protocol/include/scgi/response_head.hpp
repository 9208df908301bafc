// Finds the status of a CGI response as it streams past, without changing or
// holding a byte of it: a "Status:" header, else an NPH "HTTP/1.x NNN" first
// line, else 302 when a Location header stands without a status, else 200.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace scgi {

class ResponseHeadReader {
 public:
  enum class Status {
    need_more,  // the blank line that ends the head has not come yet
    complete,   // status_code() is the response's status
    malformed,  // a bad Status or first line, or the response ended inside its head
    too_long,   // no blank line within max_head_bytes
  };

  explicit ResponseHeadReader(std::size_t max_head_bytes = 64 * 1024);

  // Feeds the next piece of the response; bytes after the head are ignored.
  Status feed(std::string_view piece);
  // The response ended (the backend closed): a head still open is malformed.
  Status finish();
  Status status() const { return status_; }

  // The response's status once complete; otherwise 502, which is what a
  // front end such as nginx answers to a response it cannot read.
  int status_code() const;
  // Bytes up to and including the blank line (valid once complete).
  std::size_t head_bytes() const { return head_bytes_; }

 private:
  void end_line();
  void read_header_line(std::string_view line);
  static int parse_status_digits(std::string_view text);

  // Only the start of each line matters: the name and a 3-digit status fit.
  static constexpr std::size_t kKeptLineBytes = 256;

  std::size_t max_head_bytes_;
  Status status_ = Status::need_more;
  std::size_t head_bytes_ = 0;
  std::string line_;  // the first kKeptLineBytes of the current line
  std::size_t line_length_ = 0;
  bool first_line_ = true;
  int nph_status_ = 0;
  int status_header_ = 0;
  bool location_ = false;
};

}  // namespace scgi
