// Fuzz target for ResponseHeadReader: the same response fed whole, in two
// pieces or one byte at a time gives the same status; a smaller limit only
// cuts the reading short; and the status agrees with a line-by-line reading
// of docs/design.md's "SCGI out" rule.
#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "scgi/response_head.hpp"

namespace {

using scgi::ResponseHeadReader;
using Status = ResponseHeadReader::Status;

constexpr std::size_t kDefaultLimit = 64 * 1024;
constexpr std::size_t kSmallLimit = 64;
// The reader keeps only the start of each line; lines up to this long are
// surely read whole, so the reference reading below applies to them.
constexpr std::size_t kReferenceLineBytes = 200;

// Where to cut the input in two: derived from its bytes, so a crash replays.
std::size_t cut_point(std::string_view data) {
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (char c : data)
    hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
  return hash % (data.size() + 1);
}

struct Reading {
  Status status;  // after the last piece
  int status_code;
  std::size_t head_bytes;
  Status finished;  // after finish()
  int finished_code;

  bool operator==(const Reading&) const = default;
};

// Feeds `data` cut at `cuts` (ascending), checking each step, then finishes.
Reading read_in_pieces(std::string_view data, std::size_t limit,
                       const std::vector<std::size_t>& cuts) {
  ResponseHeadReader reader(limit);
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t end = i < cuts.size() ? cuts[i] : data.size();
    const Status before = reader.status();
    const Status after = reader.feed(data.substr(start, end - start));
    FUZZ_CHECK(after == reader.status());
    if (before != Status::need_more) FUZZ_CHECK(after == before);
    start = end;
  }
  FUZZ_CHECK(reader.feed({}) == reader.status());
  Reading reading{reader.status(), reader.status_code(), reader.head_bytes(), {}, 0};
  if (reading.status != Status::complete) FUZZ_CHECK(reading.status_code == 502);

  reading.finished = reader.finish();
  reading.finished_code = reader.status_code();
  FUZZ_CHECK(reading.finished == reader.status());
  FUZZ_CHECK(reader.finish() == reading.finished);
  if (reading.status == Status::need_more) {
    FUZZ_CHECK(reading.finished == Status::malformed);
  } else {
    FUZZ_CHECK(reading.finished == reading.status);
    FUZZ_CHECK(reading.finished_code == reading.status_code);
  }
  return reading;
}

// The end of the first blank line ("\n" or "\r\n" alone), if any.
std::optional<std::size_t> end_of_head(std::string_view data) {
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] != '\n') continue;
    const std::string_view line = data.substr(line_start, i - line_start);
    if (line.empty() || line == "\r") return i + 1;
    line_start = i + 1;
  }
  return std::nullopt;
}

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i])))
      return false;
  }
  return true;
}

// "NNN" (100-999) alone or before a space or tab; nullopt otherwise.
std::optional<int> status_digits(std::string_view text) {
  if (text.size() < 3) return std::nullopt;
  if (!std::all_of(text.begin(), text.begin() + 3, [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  if (text.size() > 3 && text[3] != ' ' && text[3] != '\t') return std::nullopt;
  const int code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
  if (code < 100) return std::nullopt;
  return code;
}

// The reading of a whole response, line by line: the status, or nullopt when
// the reference does not apply (a long line, or no complete head).
struct Reference {
  Status status;
  int status_code;
};

std::optional<Reference> reference_reading(std::string_view data) {
  const auto head_end = end_of_head(data);
  std::optional<int> nph;
  std::optional<int> status_header;
  bool location = false;
  bool first = true;
  std::size_t line_start = 0;
  while (true) {
    const std::size_t newline = data.find('\n', line_start);
    if (newline == std::string_view::npos) return std::nullopt;  // no head end before the data ends
    std::string_view line = data.substr(line_start, newline - line_start);
    if (line.size() > kReferenceLineBytes) return std::nullopt;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
      FUZZ_CHECK(head_end == newline + 1);
      const int code = nph ? *nph : status_header ? *status_header : location ? 302 : 200;
      return Reference{Status::complete, code};
    }
    if (first && line.starts_with("HTTP/")) {
      const std::size_t space = line.find(' ');
      if (space == std::string_view::npos) return Reference{Status::malformed, 502};
      nph = status_digits(line.substr(space + 1));
      if (!nph) return Reference{Status::malformed, 502};
    } else if (starts_with_nocase(line, "Status:")) {
      std::string_view value = line.substr(7);
      while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
      status_header = status_digits(value);
      if (!status_header) return Reference{Status::malformed, 502};
    } else if (starts_with_nocase(line, "Location:")) {
      location = true;
    }
    first = false;
    line_start = newline + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::size_t> every_byte;
  for (std::size_t i = 1; i < size; ++i)
    every_byte.push_back(i);

  const Reading whole = read_in_pieces(input, kDefaultLimit, {});
  FUZZ_CHECK(whole == read_in_pieces(input, kDefaultLimit, {cut_point(input)}));
  FUZZ_CHECK(whole == read_in_pieces(input, kDefaultLimit, every_byte));

  const auto head_end = end_of_head(input);
  if (whole.status == Status::complete) {
    // The head ends at the first blank line, within the limit.
    FUZZ_CHECK(head_end && whole.head_bytes == *head_end);
    FUZZ_CHECK(whole.head_bytes <= kDefaultLimit);
    FUZZ_CHECK(whole.status_code >= 100 && whole.status_code <= 999);
  }
  if (whole.status == Status::need_more) {
    FUZZ_CHECK(!head_end);
    FUZZ_CHECK(whole.head_bytes == size);
  }
  if (whole.status == Status::too_long) FUZZ_CHECK(!head_end || *head_end > kDefaultLimit);

  if (size <= kDefaultLimit) {
    if (const auto reference = reference_reading(input)) {
      FUZZ_CHECK(whole.status == reference->status);
      FUZZ_CHECK(whole.status_code == reference->status_code);
    }
  }

  // A small limit reads the same first bytes, and stops where they end.
  const Reading small = read_in_pieces(input, kSmallLimit, {cut_point(input)});
  const Reading prefix = read_in_pieces(input.substr(0, kSmallLimit), kDefaultLimit, {});
  if (prefix.status != Status::need_more) {
    FUZZ_CHECK(small.status == prefix.status);
    FUZZ_CHECK(small.status_code == prefix.status_code);
    FUZZ_CHECK(small.head_bytes == prefix.head_bytes);
  } else if (size > kSmallLimit) {
    FUZZ_CHECK(small.status == Status::too_long);
    FUZZ_CHECK(small.status_code == 502);
  } else {
    FUZZ_CHECK(small == prefix);
  }
  return 0;
}
