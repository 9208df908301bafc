// Worker output into log lines: bytes from a worker's stdout/stderr pipe, cut
// at newlines, each line prefixed with where it came from. Nothing is ever
// dropped: a line longer than the piece size comes out in pieces, each marked
// as continued; control bytes are escaped so that binary junk cannot break a
// log line or a terminal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace scgi::manager {

class OutputLines {
 public:
  // Called per line (without its newline), or per piece of a long line with
  // `continued` true for every piece but the last.
  using Sink = std::function<void(std::string_view line, bool continued)>;

  static constexpr std::size_t kMaxPieceBytes = 16 * 1024;

  explicit OutputLines(Sink sink, std::size_t max_piece_bytes = kMaxPieceBytes);

  void feed(std::string_view bytes);
  // The pipe closed: what is left is a last line without its newline.
  void finish();

  // The line begun but not ended yet (at most max_piece_bytes, no newline):
  // all the state there is. An upgrade hands it on, and the next image's
  // splitter is fed it first, so that the line goes on where it was.
  const std::string& partial() const { return pending_; }

 private:
  Sink sink_;
  std::size_t max_piece_;
  std::string pending_;  // a line begun but not ended, at most max_piece_ (then held until
                         // more of its line, or its end, says whether it continues)
};

// "2026-11-24T20:10:28.123Z app[3] 4242| the line" ("+|" for a piece that
// continues), with control bytes other than tab written as \xNN and a
// backslash as \\, so one log line is always one line.
std::string format_output_line(std::string_view timestamp, std::string_view pool,
                               std::uint32_t worker, long pid, std::string_view text,
                               bool continued);

}  // namespace scgi::manager
