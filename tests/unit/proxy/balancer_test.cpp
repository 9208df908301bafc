#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <vector>

#include "balancer.hpp"

using scgi::proxy::Candidate;
using scgi::proxy::choose_least_busy;

TEST_CASE("the least busy candidate is chosen", "[balancer]") {
  const std::vector<Candidate> candidates{{3, 4}, {1, 4}, {2, 4}};
  CHECK(choose_least_busy(candidates, 0) == 1u);
  CHECK(choose_least_busy(candidates, 2) == 1u);
}

TEST_CASE("load is relative to each candidate's concurrency", "[balancer]") {
  // 2/8 = 0.25 is less busy than 1/2 = 0.5, though it has more in flight.
  const std::vector<Candidate> candidates{{1, 2}, {2, 8}};
  CHECK(choose_least_busy(candidates, 0) == 1u);
  // Exactly equal ratios (1/2 and 4/8) are a tie.
  const std::vector<Candidate> tie{{1, 2}, {4, 8}};
  CHECK(choose_least_busy(tie, 0) == 0u);
  CHECK(choose_least_busy(tie, 1) == 1u);
}

TEST_CASE("a candidate at its concurrency is never chosen", "[balancer]") {
  const std::vector<Candidate> candidates{{1, 1}, {4, 4}, {0, 2}};
  CHECK(choose_least_busy(candidates, 0) == 2u);
  const std::vector<Candidate> full{{1, 1}, {4, 4}};
  CHECK_FALSE(choose_least_busy(full, 0).has_value());
}

TEST_CASE("ineligible candidates (down, draining, already tried) are skipped", "[balancer]") {
  const std::vector<Candidate> candidates{{0, 1, false}, {0, 1, true}};
  for (std::size_t rotation = 0; rotation < 4; ++rotation)
    CHECK(choose_least_busy(candidates, rotation) == 1u);
  const std::vector<Candidate> none{{0, 1, false}};
  CHECK_FALSE(choose_least_busy(none, 0).has_value());
  CHECK_FALSE(choose_least_busy({}, 0).has_value());
}

TEST_CASE("ties go to the first at or after the rotation", "[balancer]") {
  const std::vector<Candidate> idle(4, Candidate{0, 1});
  for (std::size_t rotation = 0; rotation < 8; ++rotation)
    CHECK(choose_least_busy(idle, rotation) == rotation % 4);
}

namespace {

// Simulates a pool for `steps` picks: each pick holds its candidate for
// hold(candidate) steps, then frees it. Returns the picks per candidate and
// checks that no candidate ever goes past its concurrency.
template <class Hold>
std::map<std::size_t, int> simulate(std::vector<Candidate> pool, int steps, Hold hold) {
  std::vector<std::pair<std::size_t, int>> held;  // candidate, steps left to hold
  std::map<std::size_t, int> picks;
  std::size_t rotation = 0;
  for (int step = 0; step < steps; ++step) {
    for (auto it = held.begin(); it != held.end();) {
      if (--it->second == 0) {
        --pool[it->first].in_flight;
        it = held.erase(it);
      } else {
        ++it;
      }
    }
    const auto chosen = choose_least_busy(pool, rotation++);
    if (!chosen) continue;
    REQUIRE(pool[*chosen].in_flight < pool[*chosen].concurrency);
    ++pool[*chosen].in_flight;
    ++picks[*chosen];
    held.emplace_back(*chosen, hold(*chosen));
  }
  return picks;
}

}  // namespace

TEST_CASE("over many picks with advancing rotation, equal candidates share evenly", "[balancer]") {
  std::mt19937 random(42);
  const auto picks = simulate(std::vector<Candidate>(5, Candidate{0, 3}), 30'000,
                              [&](std::size_t) { return 1 + static_cast<int>(random() % 12); });
  int least = picks.begin()->second;
  int most = least;
  for (const auto& [index, count] : picks) {
    least = std::min(least, count);
    most = std::max(most, count);
  }
  CHECK(picks.size() == 5);
  CHECK(most - least < most / 20);  // within 5 %
}

TEST_CASE("a slower candidate (requests held longer) gets fewer picks", "[balancer]") {
  // Candidate 0 holds each request five times longer than candidate 1.
  auto picks = simulate(std::vector<Candidate>(2, Candidate{0, 2}), 10'000,
                        [](std::size_t candidate) { return candidate == 0 ? 10 : 2; });
  CHECK(picks[0] * 3 < picks[1]);
}
