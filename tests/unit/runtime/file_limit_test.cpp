#include "scgi/runtime/file_limit.hpp"

#include <catch2/catch.hpp>

TEST_CASE(
    "the descriptors a configuration may need: one per queued request, two per request "
    "in flight",
    "[file_limit]") {
  const scgi::ConfigResult result = scgi::parse_config(R"([[pool]]
name = "app"
listen = "127.0.0.1:4000"
command = ["app"]
workers = 4
concurrency = 2
queue_size = 100

[[pool]]
name = "consumer"
command = ["consumer"]

[[pool]]
name = "fixed"
listen = "127.0.0.1:4001"
backends = ["127.0.0.1:5000", "127.0.0.1:5001"]
queue_size = 10
)",
                                                       "t.toml", scgi::Mode::manager);
  REQUIRE(result);
  // 256 of the daemon's own; app: 100 + 2 x 4 x 2; consumer takes no requests;
  // fixed: 10 + 2 x 2 x 1.
  CHECK(scgi::descriptors_wanted(result.config()) == 256 + 116 + 14);
}
