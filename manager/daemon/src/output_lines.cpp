#include "output_lines.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace scgi::manager {

OutputLines::OutputLines(Sink sink, std::size_t max_piece_bytes)
    : sink_(std::move(sink)), max_piece_(max_piece_bytes == 0 ? 1 : max_piece_bytes) {}

void OutputLines::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t newline = bytes.find('\n');
    const std::size_t length = newline == std::string_view::npos ? bytes.size() : newline;
    // A full piece goes out as continued only once more of its line arrives,
    // so the last piece of a line is never marked continued.
    if (pending_.size() == max_piece_ && length > 0) {
      sink_(pending_, true);
      pending_.clear();
    }
    const std::size_t take = std::min(length, max_piece_ - pending_.size());
    pending_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (take == length && newline != std::string_view::npos) {
      sink_(pending_, false);
      pending_.clear();
      bytes.remove_prefix(1);
    }
  }
}

void OutputLines::finish() {
  if (pending_.empty()) return;
  sink_(pending_, false);
  pending_.clear();
}

std::string format_output_line(std::string_view timestamp, std::string_view pool,
                               std::uint32_t worker, long pid, std::string_view text,
                               bool continued) {
  std::string out =
      fmt::format("{} {}[{}] {}{} ", timestamp, pool, worker, pid, continued ? "+|" : "|");
  out.reserve(out.size() + text.size() + 1);
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\\') {
      out += "\\\\";
    } else if ((byte < 0x20 && c != '\t') || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  out += '\n';
  return out;
}

}  // namespace scgi::manager
