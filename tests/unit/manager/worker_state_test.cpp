#include <catch2/catch.hpp>

#include "restart_policy.hpp"
#include "worker_state.hpp"

using namespace scgi;
using namespace scgi::manager;
using namespace std::chrono_literals;
using A = WorkerAction;
using E = WorkerEvent;
using S = WorkerState;

namespace {

// Runs events from `state` and returns the final state with every action.
std::pair<S, std::vector<A>> run(S state, Wanted wanted, std::initializer_list<E> events) {
  std::vector<A> actions;
  for (const E event : events) {
    const Transition t = transition(state, event, wanted);
    REQUIRE(t.valid);
    state = t.next;
    actions.insert(actions.end(), t.actions.begin(), t.actions.end());
  }
  return {state, actions};
}

}  // namespace

TEST_CASE("a worker is routed only once its socket accepts", "[manager][state]") {
  auto [state, actions] = run(S::stopped, Wanted::up, {E::start});
  CHECK(state == S::starting);
  CHECK(actions == std::vector<A>{A::spawn, A::probe});
  std::tie(state, actions) = run(S::starting, Wanted::up, {E::became_ready});
  CHECK(state == S::ready);
  CHECK(actions == std::vector<A>{A::route});
}

TEST_CASE("stopping a ready worker drains it before SIGTERM, then SIGKILL", "[manager][state]") {
  auto [state, actions] = run(S::ready, Wanted::down, {E::stop});
  CHECK(state == S::draining);
  CHECK(actions == std::vector<A>{A::drain});
  std::tie(state, actions) = run(S::draining, Wanted::down, {E::drained});
  CHECK(state == S::stopping);
  CHECK(actions == std::vector<A>{A::unroute, A::terminate});
  std::tie(state, actions) = run(S::stopping, Wanted::down, {E::stop_timeout});
  CHECK(actions == std::vector<A>{A::kill});
  std::tie(state, actions) = run(S::stopping, Wanted::down, {E::exited});
  CHECK(state == S::stopped);
  CHECK(actions.empty());
}

TEST_CASE("draining past stop_timeout stops the worker anyway", "[manager][state]") {
  auto [state, actions] = run(S::draining, Wanted::down, {E::stop_timeout});
  CHECK(state == S::stopping);
  CHECK(actions == std::vector<A>{A::unroute, A::terminate});
}

TEST_CASE("a worker that dies while wanted up is replaced after the backoff", "[manager][state]") {
  auto [state, actions] = run(S::ready, Wanted::up, {E::exited});
  CHECK(state == S::backoff);
  CHECK(actions == std::vector<A>{A::unroute, A::count_failure, A::schedule_restart});
  std::tie(state, actions) = run(S::backoff, Wanted::up, {E::backoff_done});
  CHECK(state == S::starting);
  CHECK(actions == std::vector<A>{A::spawn, A::probe});
}

TEST_CASE("failed starts count as failures: exec failure, early exit, ready_timeout",
          "[manager][state]") {
  for (const E event : {E::spawn_failed, E::exited}) {
    auto [state, actions] = run(S::starting, Wanted::up, {event});
    CHECK(state == S::backoff);
    CHECK(actions == std::vector<A>{A::count_failure, A::schedule_restart});
  }
  // Not ready in time: killed at once (it never served) and restarted after the backoff.
  auto [state, actions] = run(S::starting, Wanted::up, {E::ready_timeout, E::exited});
  CHECK(state == S::backoff);
  CHECK(actions == std::vector<A>{A::count_failure, A::kill, A::schedule_restart});
}

TEST_CASE("a worker stopped on purpose while wanted up (a recycle) restarts at once",
          "[manager][state]") {
  auto [state, actions] = run(S::ready, Wanted::up, {E::stop, E::drained, E::exited});
  CHECK(state == S::starting);
  CHECK(std::count(actions.begin(), actions.end(), A::count_failure) == 0);
  CHECK(std::count(actions.begin(), actions.end(), A::schedule_restart) == 0);
}

TEST_CASE("a worker stopped by hand stays stopped until started", "[manager][state]") {
  auto [state, actions] = run(S::backoff, Wanted::down, {E::stop});
  CHECK(state == S::stopped);
  CHECK_FALSE(transition(S::stopped, E::backoff_done, Wanted::down).valid);
  CHECK(transition(S::stopped, E::start, Wanted::up).next == S::starting);
}

TEST_CASE("events that mean nothing in a state are ignored, never a crash", "[manager][state]") {
  const S states[] = {S::starting, S::ready, S::draining, S::stopping, S::backoff, S::stopped};
  const E events[] = {E::spawn_failed, E::became_ready, E::ready_timeout, E::exited, E::stop,
                      E::drained,      E::stop_timeout, E::backoff_done,  E::start};
  int valid = 0;
  for (const S state : states) {
    for (const E event : events) {
      for (const Wanted wanted : {Wanted::up, Wanted::down}) {
        const Transition t = transition(state, event, wanted);
        if (!t.valid) {
          CHECK(t.next == state);
          CHECK(t.actions.empty());
        } else {
          ++valid;
        }
        CHECK_FALSE(name(t.next).empty());
      }
    }
  }
  CHECK(valid > 20);
}

TEST_CASE("backoff doubles from the first delay to the ceiling and resets after staying up",
          "[manager][restart]") {
  Backoff backoff({Milliseconds(100), Milliseconds(1000)});
  CHECK(backoff.on_failure() == Milliseconds(100));
  CHECK(backoff.on_failure() == Milliseconds(200));
  CHECK(backoff.on_failure() == Milliseconds(400));
  CHECK(backoff.on_failure() == Milliseconds(800));
  CHECK(backoff.on_failure() == Milliseconds(1000));
  for (int i = 0; i < 100; ++i)
    CHECK(backoff.on_failure() == Milliseconds(1000));  // never gives up
  const auto t0 = Clock::now();
  backoff.on_up(t0, t0 + 500ms);
  CHECK(backoff.on_failure() == Milliseconds(1000));  // not up long enough
  backoff.on_up(t0, t0 + 1000ms);
  CHECK(backoff.on_failure() == Milliseconds(100));
}

TEST_CASE("a pool is failing after 5 failures in a minute and recovers when a worker stays up",
          "[manager][restart]") {
  FailingDetector detector;
  const auto t0 = Clock::now();
  for (int i = 0; i < 4; ++i)
    CHECK_FALSE(detector.on_failure(t0 + std::chrono::seconds(i)));
  CHECK_FALSE(detector.failing());
  CHECK(detector.on_failure(t0 + 4s));  // the verdict changed
  CHECK(detector.failing());
  CHECK_FALSE(detector.on_failure(t0 + 5s));      // still failing: no new log line
  CHECK_FALSE(detector.on_up(t0 + 5s, t0 + 6s));  // up for 1 s: not yet
  CHECK(detector.on_up(t0 + 5s, t0 + 16s));
  CHECK_FALSE(detector.failing());

  FailingDetector slow;
  for (int i = 0; i < 10; ++i)
    slow.on_failure(t0 + std::chrono::seconds(20 * i));
  CHECK_FALSE(slow.failing());  // 5 failures never fall within one minute
}
