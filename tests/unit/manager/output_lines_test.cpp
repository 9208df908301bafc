#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "output_lines.hpp"

using scgi::manager::format_output_line;
using scgi::manager::OutputLines;

namespace {

struct Collected {
  std::vector<std::pair<std::string, bool>> lines;
  OutputLines::Sink sink() {
    return [this](std::string_view line, bool continued) {
      lines.emplace_back(std::string(line), continued);
    };
  }
  // The pieces joined back: must equal what was written.
  std::string joined() const {
    std::string out;
    for (const auto& [text, continued] : lines)
      out += text + (continued ? "" : "\n");
    return out;
  }
};

}  // namespace

TEST_CASE("output is cut into lines, whatever the pieces the pipe delivers", "[manager][output]") {
  const std::string output = "first\nsecond line\n\nlast without newline";
  for (std::size_t cut = 0; cut <= output.size(); ++cut) {
    CAPTURE(cut);
    Collected got;
    OutputLines lines(got.sink());
    lines.feed(std::string_view(output).substr(0, cut));
    lines.feed(std::string_view(output).substr(cut));
    lines.finish();
    REQUIRE(got.lines.size() == 4);
    CHECK(got.lines[0].first == "first");
    CHECK(got.lines[1].first == "second line");
    CHECK(got.lines[2].first.empty());
    CHECK(got.lines[3].first == "last without newline");
    for (const auto& line : got.lines)
      CHECK_FALSE(line.second);
  }
}

TEST_CASE("a line of any length comes out whole, in marked pieces", "[manager][output]") {
  Collected got;
  OutputLines lines(got.sink(), 10);
  const std::string long_line(35, 'x');
  lines.feed(long_line + "\nshort\n" + std::string(10, 'y') + "\n");
  lines.finish();
  // 35 = 10 + 10 + 10 + 5; a line of exactly 10 is one piece, not continued.
  REQUIRE(got.lines.size() == 6);
  CHECK(got.lines[0] == std::pair<std::string, bool>{std::string(10, 'x'), true});
  CHECK(got.lines[2] == std::pair<std::string, bool>{std::string(10, 'x'), true});
  CHECK(got.lines[3] == std::pair<std::string, bool>{std::string(5, 'x'), false});
  CHECK(got.lines[4] == std::pair<std::string, bool>{"short", false});
  CHECK(got.lines[5] == std::pair<std::string, bool>{std::string(10, 'y'), false});
  CHECK(got.joined() == long_line + "\nshort\n" + std::string(10, 'y') + "\n");
}

TEST_CASE("one megabyte without a newline, fed a byte at a time, loses nothing",
          "[manager][output]") {
  Collected got;
  OutputLines lines(got.sink(), 4096);
  std::string data;
  for (int i = 0; i < 1 << 20; ++i)
    data.push_back(static_cast<char>('a' + i % 26));
  for (const char c : data)
    lines.feed(std::string_view(&c, 1));
  lines.finish();
  CHECK(got.joined() == data + "\n");
  for (const auto& [text, continued] : got.lines)
    CHECK(text.size() <= 4096);
}

TEST_CASE("binary junk is escaped so one log line stays one line", "[manager][output]") {
  std::string junk;
  for (int i = 0; i < 256; ++i)
    if (i != '\n') junk.push_back(static_cast<char>(i));
  const std::string line = format_output_line("T", "app", 3, 4242, junk, false);
  CHECK(line.starts_with("T app[3] 4242| \\x00\\x01"));
  CHECK(line.find('\n') == line.size() - 1);
  CHECK(line.find('\r') == std::string::npos);
  CHECK(line.find('\x1b') == std::string::npos);  // no terminal escapes
  CHECK(line.find("\t") != std::string::npos);    // tabs are kept
  CHECK(line.find("\\\\") != std::string::npos);  // a backslash is doubled
  CHECK(format_output_line("T", "app", 0, 1, "piece", true) == "T app[0] 1+| piece\n");
}
