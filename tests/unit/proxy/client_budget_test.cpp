#include <catch2/catch.hpp>

#include "client_budget.hpp"

using namespace scgi::proxy;
using namespace std::chrono_literals;
using Clock = ClientBudget::Clock;

namespace {
const Clock::time_point t0 = Clock::time_point() + 1000s;
}

TEST_CASE("without a minimum rate only each gap is bounded", "[client-budget]") {
  ClientBudget budget(10s, 0);
  budget.begin_wait(t0);
  CHECK(budget.deadline(t0) == t0 + 10s);
  budget.end_wait(t0 + 9s);
  for (int i = 1; i <= 100; ++i) {  // 100 gaps of 9 s, no byte: still allowed
    budget.begin_wait(t0 + i * 10s);
    budget.end_wait(t0 + i * 10s + 9s);
  }
  CHECK(budget.deadline(t0 + 2000s) == t0 + 2010s);
  CHECK_FALSE(budget.exhausted(t0 + 2000s));
}

TEST_CASE("the total wait is client_timeout plus one second per min_rate bytes",
          "[client-budget]") {
  ClientBudget budget(10s, 1000);
  CHECK(budget.allowed() == 10s);
  budget.add_bytes(5000);
  CHECK(budget.allowed() == 15s);
  budget.begin_wait(t0);
  CHECK(budget.deadline(t0) == t0 + 10s);  // the gap comes first
  budget.end_wait(t0 + 9s);
  budget.begin_wait(t0 + 20s);
  CHECK(budget.deadline(t0 + 20s) == t0 + 26s);  // 15 s allowed, 9 s spent
  CHECK_FALSE(budget.exhausted(t0 + 25s));
  CHECK(budget.exhausted(t0 + 26s));
  CHECK(budget.deadline(t0 + 27s) == t0 + 27s);  // nothing left: at once
}

TEST_CASE("a trickling client runs out however short each gap", "[client-budget]") {
  // One byte every 3 s, as in the attack: each gap is well under client_timeout.
  ClientBudget budget(10s, 8192);
  Clock::time_point now = t0;
  int bytes = 0;
  while (!budget.exhausted(now) && bytes < 100) {
    budget.begin_wait(now);
    const Clock::time_point deadline = budget.deadline(now);
    if (deadline < now + 3s) break;  // the watchdog would cut this wait
    now += 3s;
    budget.end_wait(now);
    budget.add_bytes(1);
    ++bytes;
  }
  CHECK(bytes == 3);  // 9 s spent, the 4th wait would end past 10 s
  CHECK(budget.deadline(now) <= now + 1s + 1ms);
}

TEST_CASE("overlapping waits count their time once", "[client-budget]") {
  ClientBudget budget(10s, 1000);
  budget.begin_wait(t0);       // the body
  budget.begin_wait(t0 + 1s);  // the response, meanwhile
  budget.end_wait(t0 + 3s);
  CHECK(budget.waiting());
  CHECK(budget.waited(t0 + 4s) == 4s);
  budget.end_wait(t0 + 4s);
  CHECK_FALSE(budget.waiting());
  CHECK(budget.waited(t0 + 100s) == 4s);
  budget.end_wait(t0 + 5s);  // unmatched: ignored
  CHECK(budget.waited(t0 + 100s) == 4s);
}

TEST_CASE("a huge transfer earns a finite, non-overflowing allowance", "[client-budget]") {
  ClientBudget budget(10s, 1);
  budget.add_bytes(~std::uint64_t{0});
  CHECK(budget.allowed() > 10s);
  budget.begin_wait(t0);
  CHECK(budget.deadline(t0) == t0 + 10s);
}

TEST_CASE("bytes still in the send queue earn nothing", "[client-budget]") {
  ClientBudget budget(10s, 1000);
  budget.add_bytes(4'000'000);  // what the kernel took at once
  budget.set_unacknowledged(3'990'000);
  CHECK(budget.bytes_moved() == 10'000);
  CHECK(budget.allowed() == 20s);
  budget.set_unacknowledged(5'000'000);  // never below nothing
  CHECK(budget.bytes_moved() == 0);
}
