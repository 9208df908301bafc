#include <catch2/catch.hpp>

#include "recycling.hpp"

using namespace scgi;
using namespace scgi::manager;
using namespace std::chrono_literals;

TEST_CASE("recycling: each new process gets limits within 10% of the pool's", "[manager]") {
  PoolConfig pool;
  pool.max_requests = 1000;
  pool.max_lifetime = Milliseconds(60'000);
  std::mt19937 random(7);
  for (int i = 0; i < 200; ++i) {
    const RecycleLimits limits = limits_for_new_process(pool, random);
    CHECK(limits.max_requests >= 900);
    CHECK(limits.max_requests <= 1100);
    CHECK(limits.max_lifetime >= Milliseconds(54'000));
    CHECK(limits.max_lifetime <= Milliseconds(66'000));
  }
  PoolConfig unlimited;
  const RecycleLimits none = limits_for_new_process(unlimited, random);
  CHECK(none.max_requests == 0);
  CHECK(none.max_lifetime == Milliseconds(0));
}

TEST_CASE("recycling: the first limit reached names the reason", "[manager]") {
  const RecycleLimits limits{
      .max_requests = 100, .max_lifetime = Milliseconds(60'000), .max_rss_bytes = 1'000'000};
  CHECK_FALSE(recycle_reason({.served = 99, .age = 59s, .rss_bytes = 1'000'000}, limits));
  CHECK(recycle_reason({.served = 100, .age = 1s, .rss_bytes = 0}, limits) ==
        "served 100 requests (max_requests)");
  CHECK(recycle_reason({.served = 0, .age = 60s, .rss_bytes = 0}, limits) ==
        "ran for 1m (max_lifetime)");
  CHECK(recycle_reason({.served = 0, .age = 1s, .rss_bytes = 1'000'001}, limits) ==
        "uses 1000001 bytes of memory (max_rss 1000000)");
  CHECK_FALSE(recycle_reason({.served = 1'000'000, .age = 1000h, .rss_bytes = 1ull << 40}, {}));
}
