#include "scgi/units.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

using Catch::Matchers::Contains;
using scgi::format_duration;
using scgi::format_size;
using scgi::Milliseconds;
using scgi::parse_duration;
using scgi::parse_size;

namespace {

Milliseconds duration_of(std::string_view text) {
  const auto result = parse_duration(text);
  INFO("parsing \"" << text << "\": " << (result ? std::string("ok") : result.error()));
  REQUIRE(result);
  return result.value();
}

std::string duration_error(std::string_view text) {
  const auto result = parse_duration(text);
  INFO("parsing \"" << text << "\"");
  REQUIRE_FALSE(result);
  return result.error();
}

std::uint64_t size_of(std::string_view text) {
  const auto result = parse_size(text);
  INFO("parsing \"" << text << "\": " << (result ? std::string("ok") : result.error()));
  REQUIRE(result);
  return result.value();
}

std::string size_error(std::string_view text) {
  const auto result = parse_size(text);
  INFO("parsing \"" << text << "\"");
  REQUIRE_FALSE(result);
  return result.error();
}

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

}  // namespace

TEST_CASE("a duration is digits and a unit, each unit with its factor", "[units]") {
  CHECK(duration_of("250ms") == Milliseconds(250));
  CHECK(duration_of("5s") == Milliseconds(5'000));
  CHECK(duration_of("2m") == Milliseconds(120'000));
  CHECK(duration_of("1h") == Milliseconds(3'600'000));
  CHECK(duration_of("0ms") == Milliseconds(0));
  CHECK(duration_of("0s") == Milliseconds(0));
}

TEST_CASE("a bare 0 is the only duration without a unit", "[units]") {
  CHECK(duration_of("0") == Milliseconds(0));
  CHECK_THAT(duration_error("5"), Contains("needs a unit") && Contains("\"5s\""));
  CHECK_THAT(duration_error("00"), Contains("needs a unit"));
}

TEST_CASE("duration groups add up", "[units]") {
  CHECK(duration_of("1m30s") == Milliseconds(90'000));
  CHECK(duration_of("1h30m") == Milliseconds(5'400'000));
  CHECK(duration_of("1h2m3s4ms") == Milliseconds(3'723'004));
  CHECK_THAT(duration_error("1m30"), Contains("needs a unit") && Contains("\"1m30s\""));
}

TEST_CASE("leading zeros in a duration are only digits", "[units]") {
  CHECK(duration_of("007s") == Milliseconds(7'000));
}

TEST_CASE("every malformed duration is refused with a message saying what to write", "[units]") {
  CHECK_THAT(duration_error(""), Contains("empty duration") && Contains("\"5s\""));
  CHECK_THAT(duration_error("s"), Contains("expected digits") && Contains("ms, s, m, h"));
  CHECK_THAT(duration_error("ms5"), Contains("expected digits"));
  CHECK_THAT(duration_error("-5s"), Contains("expected digits"));
  CHECK_THAT(duration_error("+5s"), Contains("expected digits"));
  CHECK_THAT(duration_error(" 5s"), Contains("expected digits"));
  CHECK_THAT(duration_error("5 s"), Contains("unknown unit \" s\""));
  CHECK_THAT(duration_error("5s "), Contains("unknown unit \"s \""));
  CHECK_THAT(duration_error("5sec"),
             Contains("unknown unit \"sec\"") && Contains("use ms, s, m or h"));
  CHECK_THAT(duration_error("5S"), Contains("unknown unit \"S\""));
  CHECK_THAT(duration_error("1d"), Contains("unknown unit \"d\""));
  CHECK_THAT(duration_error("1.5s"), Contains("unknown unit \".\""));
  CHECK_THAT(duration_error("5s5"), Contains("needs a unit"));
}

TEST_CASE("a duration beyond 2^63-1 milliseconds is too large, never wrapped", "[units]") {
  CHECK_THAT(duration_error(std::to_string(kMax) + "ms"), Contains("too large"));
  CHECK_THAT(duration_error(std::to_string(kMax) + "s"), Contains("too large"));
  CHECK_THAT(duration_error("9223372036854775808ms"), Contains("too large"));
  CHECK_THAT(duration_error("99999999999999999999999ms"), Contains("too large"));
  CHECK_THAT(duration_error("2562047788016h"), Contains("too large"));
}

TEST_CASE("a duration is at most a year, so that now() + it never overflows the clock", "[units]") {
  CHECK(scgi::kMaxDuration == std::chrono::hours(8760));
  CHECK(duration_of("8760h") == scgi::kMaxDuration);
  CHECK(duration_of("8759h59m59s999ms") == scgi::kMaxDuration - Milliseconds(1));
  CHECK_THAT(duration_error("8760h1ms"),
             Contains("duration \"8760h1ms\" is too large: at most 8760h (a year)"));
  CHECK_THAT(duration_error("3000000h"), Contains("too large: at most 8760h"));
  CHECK_THAT(duration_error("31536000001ms"), Contains("too large"));
  // Each group fits, the sum does not.
  CHECK_THAT(duration_error("8760h8760h"), Contains("too large"));
  // The largest allowed value still leaves the clock room, with a margin for sums.
  const auto now = std::chrono::steady_clock::now();
  CHECK(now.time_since_epoch() < std::chrono::steady_clock::duration::max() -
                                     4 * std::chrono::steady_clock::duration(scgi::kMaxDuration));
}

TEST_CASE("a size is digits with an optional binary or decimal unit", "[units]") {
  CHECK(size_of("0") == 0);
  CHECK(size_of("512") == 512);
  CHECK(size_of("512B") == 512);
  CHECK(size_of("64KiB") == 64 * 1024);
  CHECK(size_of("512MiB") == 512ull << 20);
  CHECK(size_of("2GiB") == 2ull << 30);
  CHECK(size_of("3TiB") == 3ull << 40);
  CHECK(size_of("64kB") == 64'000);
  CHECK(size_of("64KB") == 64'000);
  CHECK(size_of("5MB") == 5'000'000);
  CHECK(size_of("5GB") == 5'000'000'000ull);
  CHECK(size_of("5TB") == 5'000'000'000'000ull);
  CHECK(size_of("0KiB") == 0);
}

TEST_CASE("every malformed size is refused with a message saying what to write", "[units]") {
  CHECK_THAT(size_error(""), Contains("bad size") && Contains("\"64KiB\""));
  CHECK_THAT(size_error("KiB"), Contains("bad size"));
  CHECK_THAT(size_error("-1"), Contains("bad size"));
  CHECK_THAT(size_error(" 1"), Contains("bad size"));
  CHECK_THAT(size_error("64Kib"), Contains("unknown unit \"Kib\"") && Contains("KiB"));
  CHECK_THAT(size_error("64 KiB"), Contains("unknown unit \" KiB\""));
  CHECK_THAT(size_error("64kib"), Contains("unknown unit \"kib\""));
  CHECK_THAT(size_error("1.5GiB"), Contains("unknown unit \".5GiB\""));
  CHECK_THAT(size_error("64KiB64"), Contains("unknown unit \"KiB64\""));
}

TEST_CASE("a size beyond 2^63-1 bytes is too large, never wrapped", "[units]") {
  CHECK(size_of(std::to_string(kMax)) == static_cast<std::uint64_t>(kMax));
  CHECK_THAT(size_error("9223372036854775808"), Contains("too large"));
  CHECK_THAT(size_error("99999999999999999999999"), Contains("too large"));
  CHECK_THAT(size_error("8388608TiB"), Contains("too large"));
  CHECK(size_of("8388607TiB") == 8388607ull << 40);
}

TEST_CASE("a duration is formatted in its shortest exact spelling", "[units]") {
  CHECK(format_duration(Milliseconds(0)) == "0s");
  CHECK(format_duration(Milliseconds(-5)) == "0s");
  CHECK(format_duration(Milliseconds(250)) == "250ms");
  CHECK(format_duration(Milliseconds(5'000)) == "5s");
  CHECK(format_duration(Milliseconds(90'000)) == "1m30s");
  CHECK(format_duration(Milliseconds(3'600'000)) == "1h");
  CHECK(format_duration(Milliseconds(3'723'004)) == "1h2m3s4ms");
}

TEST_CASE("a size is formatted in the largest binary unit that divides it", "[units]") {
  CHECK(format_size(0) == "0");
  CHECK(format_size(1) == "1");
  CHECK(format_size(1000) == "1000");
  CHECK(format_size(1024) == "1KiB");
  CHECK(format_size(1536) == "1536");
  CHECK(format_size(64 * 1024) == "64KiB");
  CHECK(format_size(1024 * 1024) == "1MiB");
  CHECK(format_size(3ull << 30) == "3GiB");
  CHECK(format_size(5ull << 40) == "5TiB");
  CHECK(format_size(1ull << 50) == "1024TiB");
}

TEST_CASE("formatted durations and sizes parse back to the same value", "[units]") {
  for (std::int64_t ms :
       std::initializer_list<std::int64_t>{0, 1, 999, 1000, 1001, 59'999, 60'000, 90'500, 3'600'000,
                                           3'723'004, 86'400'000, scgi::kMaxDuration.count()}) {
    INFO(ms);
    CHECK(duration_of(format_duration(Milliseconds(ms))) == Milliseconds(ms));
  }
  for (std::uint64_t bytes :
       std::initializer_list<std::uint64_t>{0, 1, 1000, 1023, 1024, 1025, 65536, 3ull << 30,
                                            5ull << 40, static_cast<std::uint64_t>(kMax)}) {
    INFO(bytes);
    CHECK(size_of(format_size(bytes)) == bytes);
  }
}
