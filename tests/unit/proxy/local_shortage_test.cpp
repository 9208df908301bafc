#include "local_shortage.hpp"

#include <catch2/catch.hpp>

#include <asio/error.hpp>

#include <cerrno>

using scgi::proxy::is_local_shortage;
using scgi::proxy::ReportThrottle;

TEST_CASE(
    "running out of descriptors or memory is ours, a refused or reset connect is the "
    "peer's",
    "[local_shortage]") {
  for (int value : {EMFILE, ENFILE, ENOBUFS, ENOMEM})
    CHECK(is_local_shortage(asio::error_code(value, asio::system_category())));
  CHECK(is_local_shortage(asio::error::no_descriptors));
  for (int value : {ECONNREFUSED, ECONNRESET, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH})
    CHECK_FALSE(is_local_shortage(asio::error_code(value, asio::system_category())));
  CHECK_FALSE(is_local_shortage(asio::error::eof));
}

TEST_CASE("a report throttle lets one report through per interval and counts the rest",
          "[local_shortage]") {
  ReportThrottle throttle(std::chrono::hours(1));
  std::uint64_t held_back = 99;
  CHECK(throttle.allow(held_back));
  CHECK(held_back == 0);
  for (int i = 0; i < 5; ++i)
    CHECK_FALSE(throttle.allow(held_back));

  ReportThrottle every_time(std::chrono::milliseconds(0));
  CHECK(every_time.allow(held_back));
  CHECK(every_time.allow(held_back));
  CHECK(held_back == 0);
}
