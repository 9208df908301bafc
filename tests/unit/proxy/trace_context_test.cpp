#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "trace_context.hpp"

using namespace scgi::proxy;

namespace {
// The example of the W3C recommendation.
const std::string kExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
}  // namespace

TEST_CASE("a traceparent is continued only in the W3C shape", "[trace-context]") {
  CHECK(valid_traceparent(kExample));
  CHECK(trace_id_of(kExample) == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
  // A later version may carry more after a '-'; version 00 may not.
  CHECK(valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"));
  CHECK_FALSE(valid_traceparent(kExample + "-more"));
  CHECK_FALSE(valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01more"));

  CHECK_FALSE(valid_traceparent(""));
  CHECK_FALSE(valid_traceparent(kExample.substr(0, 54)));
  CHECK_FALSE(valid_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(valid_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(valid_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
  CHECK_FALSE(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
  CHECK_FALSE(valid_traceparent("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  CHECK_FALSE(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01"));
  CHECK_FALSE(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x"));
}

TEST_CASE("new traceparents are valid, sampled and never repeat", "[trace-context]") {
  std::set<std::string> trace_ids;
  std::set<std::string> parent_ids;
  for (int i = 0; i < 1000; ++i) {
    const auto made = new_traceparent();
    const std::string text(made.data(), made.size());
    REQUIRE(valid_traceparent(text));
    CHECK(text.starts_with("00-"));
    CHECK(text.ends_with("-01"));
    trace_ids.insert(std::string(trace_id_of(text)));
    parent_ids.insert(text.substr(36, 16));
  }
  CHECK(trace_ids.size() == 1000);
  CHECK(parent_ids.size() == 1000);
}
