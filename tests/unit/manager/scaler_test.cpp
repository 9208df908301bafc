#include <catch2/catch.hpp>

#include "scaler.hpp"

using namespace scgi::manager;
using namespace std::chrono_literals;

namespace {

// A pool of 1..4 workers, concurrency 2, at time `t` from an arbitrary origin.
ScaleInput pool_at(Clock::duration t, std::uint32_t target) {
  ScaleInput in;
  in.now = Clock::time_point(1h) + t;
  in.target = target;
  in.min_workers = 1;
  in.max_workers = 4;
  in.concurrency = 2;
  return in;
}

}  // namespace

TEST_CASE("a dynamic pool grows once a request has waited 50 ms", "[manager][scaling]") {
  Scaler scaler(30s);
  ScaleInput in = pool_at(0ms, 1);
  in.in_flight = 2;
  in.oldest_wait = 49ms;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.oldest_wait = 50ms;
  CHECK(scaler.decide(in) == ScaleDecision::grow);
}

TEST_CASE("growth is paced and bounded", "[manager][scaling]") {
  Scaler scaler(30s);
  ScaleInput in = pool_at(0ms, 1);
  in.oldest_wait = 500ms;
  CHECK(scaler.decide(in) == ScaleDecision::grow);
  // Not again within kGrowInterval, even though requests still wait.
  in = pool_at(100ms, 2);
  in.oldest_wait = 600ms;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.now += Scaler::kGrowInterval;
  CHECK(scaler.decide(in) == ScaleDecision::grow);
  // Not while kMaxStarting workers are still starting.
  in = pool_at(1s, 3);
  in.oldest_wait = 900ms;
  in.starting = Scaler::kMaxStarting;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  // Never past max_workers.
  in = pool_at(2s, 4);
  in.oldest_wait = 900ms;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
}

TEST_CASE("a pool shrinks one worker per idle_timeout of spare capacity", "[manager][scaling]") {
  Scaler scaler(30s);
  ScaleInput in = pool_at(0s, 3);
  in.in_flight = 4;  // fits on 2 workers of concurrency 2: one is spare
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.now += 29s;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.now += 1s;
  CHECK(scaler.decide(in) == ScaleDecision::shrink);
  // The next step down needs another full idle_timeout.
  in.target = 2;
  in.in_flight = 0;
  in.now += 1s;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.now += 29s;
  CHECK(scaler.decide(in) == ScaleDecision::shrink);
  // Never below min_workers.
  in.target = 1;
  in.now += 60s;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.now += 60s;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
}

TEST_CASE("any busy moment or waiting request restarts the idle clock", "[manager][scaling]") {
  Scaler scaler(30s);
  ScaleInput in = pool_at(0s, 3);
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.now += 20s;
  in.in_flight = 5;  // needs all three workers
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.in_flight = 0;
  in.now += 20s;
  CHECK(scaler.decide(in) == ScaleDecision::stay);  // the clock restarted at 40 s
  in.now += 20s;
  in.oldest_wait = 10ms;  // waiting (not yet long enough to grow) also counts as busy
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.oldest_wait = 0ms;
  in.now += 29s;
  CHECK(scaler.decide(in) == ScaleDecision::stay);
  in.now += 31s;
  CHECK(scaler.decide(in) == ScaleDecision::shrink);
}

TEST_CASE("a pool below min_workers grows back at once", "[manager][scaling]") {
  Scaler scaler(30s);
  ScaleInput in = pool_at(0s, 0);
  CHECK(scaler.decide(in) == ScaleDecision::grow);
}

TEST_CASE("starts toward a target are a few a tick while few are starting", "[manager][scaling]") {
  CHECK(starts_allowed(0, 0) == 0);
  CHECK(starts_allowed(3, 0) == 3);
  CHECK(starts_allowed(100'000, 0) == Scaler::kStartsPerTick);
  CHECK(starts_allowed(100'000, Scaler::kMaxStartingAtOnce - 1) == 1);
  CHECK(starts_allowed(100'000, Scaler::kMaxStartingAtOnce) == 0);
  CHECK(starts_allowed(100'000, Scaler::kMaxStartingAtOnce + 5) == 0);
  // A pool of 1000 needs many ticks, each one forking no more than kStartsPerTick.
  std::uint32_t started = 0;
  int ticks = 0;
  while (started < 1000 && ticks < 10'000) {
    const std::uint32_t now = starts_allowed(1000 - started, 0);
    CHECK(now <= Scaler::kStartsPerTick);
    started += now;
    ++ticks;
  }
  CHECK(started == 1000);
  CHECK(ticks == 1000 / Scaler::kStartsPerTick);
}

TEST_CASE("scale by hand stays within the pool's bounds or max_workers_per_pool",
          "[manager][scaling]") {
  scgi::PoolConfig fixed;
  fixed.name = "app";
  fixed.min_workers = fixed.max_workers = 4;
  CHECK_FALSE(scale_refusal(fixed, 1024, 0, "/etc/scgi/scgi.toml"));
  CHECK_FALSE(scale_refusal(fixed, 1024, 1024, "/etc/scgi/scgi.toml"));
  const auto too_many = scale_refusal(fixed, 1024, 100'000, "/etc/scgi/scgi.toml");
  REQUIRE(too_many);
  CHECK(*too_many ==
        "100000 workers is more than [manager] max_workers_per_pool (1024): raise it in "
        "/etc/scgi/scgi.toml (at most 4096) and run scgictl reload, or scale pool app to fewer");

  scgi::PoolConfig dynamic = fixed;
  dynamic.min_workers = 2;
  dynamic.max_workers = 16;
  CHECK_FALSE(scale_refusal(dynamic, 1024, 2, "s.toml"));
  CHECK_FALSE(scale_refusal(dynamic, 1024, 16, "s.toml"));
  for (const std::uint32_t outside : {0u, 1u, 17u, 1024u}) {
    const auto refused = scale_refusal(dynamic, 1024, outside, "s.toml");
    REQUIRE(refused);
    CHECK_THAT(*refused, Catch::StartsWith("pool app grows and shrinks between 2 and 16 workers"));
  }
}
