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

// Runs events from `slot` and returns the final slot with every action.
std::pair<WorkerSlot, std::vector<A>> run_slot(WorkerSlot slot, std::initializer_list<E> events) {
  std::vector<A> actions;
  for (const E event : events) {
    const Transition t = transition(slot, event);
    REQUIRE(t.valid);
    slot = t.next;
    actions.insert(actions.end(), t.actions.begin(), t.actions.end());
  }
  return {slot, actions};
}

// The same for a slot's own worker, returning its final state.
std::pair<S, std::vector<A>> run(S state, Wanted wanted, std::initializer_list<E> events) {
  auto [slot, actions] = run_slot({state, wanted, SlotRole::serving}, events);
  CHECK(slot.wanted == wanted);
  CHECK(slot.role == SlotRole::serving);
  return {slot.state, actions};
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
  CHECK_FALSE(transition({S::stopped, Wanted::down}, E::backoff_done).valid);
  CHECK(transition({S::stopped, Wanted::down}, E::start).next ==
        WorkerSlot{S::starting, Wanted::up, SlotRole::serving});
}

TEST_CASE("events that mean nothing in a state are ignored, never a crash", "[manager][state]") {
  const S states[] = {S::starting, S::ready, S::draining, S::stopping, S::backoff, S::stopped};
  const E events[] = {
      E::spawn_failed, E::became_ready, E::ready_timeout, E::exited, E::stop, E::halt,   E::retire,
      E::drained,      E::stop_timeout, E::backoff_done,  E::start,  E::hold, E::release};
  int valid = 0;
  for (const S state : states) {
    for (const E event : events) {
      for (const Wanted wanted : {Wanted::up, Wanted::down}) {
        for (const SlotRole role : {SlotRole::serving, SlotRole::successor, SlotRole::retiring}) {
          for (const bool held : {false, true}) {
            const WorkerSlot slot{state, wanted, role, held};
            const Transition t = transition(slot, event);
            INFO(name(state) << " " << name(event) << " " << name(role) << " held " << held);
            if (!t.valid) {
              CHECK(t.next == slot);
              CHECK(t.actions.empty());
            } else {
              ++valid;
            }
            CHECK(name(t.next.state) != "?");
            // Nothing leaves retiring: a worker that leaves the pool never comes back.
            if (role == SlotRole::retiring) CHECK(t.next.role == SlotRole::retiring);
            // Only hold and release change the mark.
            if (event != E::hold && event != E::release) CHECK(t.next.held == held);
          }
        }
      }
    }
  }
  CHECK(valid > 150);
}

TEST_CASE("a successor takes over once ready, and the slot's worker retires", "[manager][state]") {
  auto [slot, actions] =
      run_slot({S::stopped, Wanted::up, SlotRole::successor}, {E::start, E::became_ready});
  CHECK(slot == WorkerSlot{S::ready, Wanted::up, SlotRole::serving});
  CHECK(actions == std::vector<A>{A::spawn, A::probe, A::route, A::take_over});
  // The worker it replaces: drained, stopped, and gone from the slot for good.
  std::tie(slot, actions) =
      run_slot({S::ready, Wanted::up, SlotRole::serving}, {E::retire, E::drained, E::exited});
  CHECK(slot == WorkerSlot{S::stopped, Wanted::down, SlotRole::retiring});
  CHECK(actions == std::vector<A>{A::drain, A::unroute, A::terminate});
  CHECK_FALSE(transition(slot, E::start).valid);
}

TEST_CASE("a successor that fails to start is given up, never counted against the slot",
          "[manager][state]") {
  const WorkerSlot starting{S::starting, Wanted::up, SlotRole::successor};
  for (const E event : {E::spawn_failed, E::exited}) {
    const Transition t = transition(starting, event);
    CHECK(t.next == WorkerSlot{S::stopped, Wanted::down, SlotRole::retiring});
    CHECK(t.actions == std::vector<A>{A::give_up});
  }
  auto [slot, actions] = run_slot(starting, {E::ready_timeout, E::exited});
  CHECK(slot == WorkerSlot{S::stopped, Wanted::down, SlotRole::retiring});
  CHECK(actions == std::vector<A>{A::give_up, A::kill});
}

TEST_CASE("halt stops a worker for good, and a successor halted leaves the slot",
          "[manager][state]") {
  auto [slot, actions] = run_slot({S::ready, Wanted::up}, {E::halt, E::drained, E::exited});
  CHECK(slot == WorkerSlot{S::stopped, Wanted::down, SlotRole::serving});
  std::tie(slot, actions) = run_slot({S::starting, Wanted::up, SlotRole::successor}, {E::halt});
  CHECK(slot == WorkerSlot{S::stopping, Wanted::down, SlotRole::retiring});
  CHECK(actions == std::vector<A>{A::terminate});
  // Already stopped: only what is wanted changes.
  const Transition t = transition({S::stopped, Wanted::up}, E::halt);
  CHECK(t.valid);
  CHECK(t.next == WorkerSlot{S::stopped, Wanted::down, SlotRole::serving});
  CHECK(t.actions.empty());
  // Started again while still stopping: it comes back once its process is gone.
  std::tie(slot, actions) = run_slot({S::stopping, Wanted::down}, {E::start, E::exited});
  CHECK(slot == WorkerSlot{S::starting, Wanted::up, SlotRole::serving});
}

TEST_CASE("a drain by hand holds a routed worker back, and marks one not yet routed",
          "[manager][state]") {
  Transition t = transition({S::ready, Wanted::up}, E::hold);
  CHECK(t.next.held);
  CHECK(t.actions == std::vector<A>{A::hold_back});
  CHECK_FALSE(transition(t.next, E::hold).valid);  // already held
  t = transition(t.next, E::release);
  CHECK_FALSE(t.next.held);
  CHECK(t.actions == std::vector<A>{A::let_in});
  // Starting: only the mark, which route() then follows.
  t = transition({S::starting, Wanted::up}, E::hold);
  CHECK(t.next == WorkerSlot{S::starting, Wanted::up, SlotRole::serving, true});
  CHECK(t.actions.empty());
  // Leaving the pool: nothing to hold.
  CHECK_FALSE(transition({S::draining, Wanted::down, SlotRole::retiring}, E::hold).valid);
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
