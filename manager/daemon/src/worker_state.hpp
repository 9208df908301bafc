// The life of one worker as a state machine: its process's state, what is
// wanted of it (up or down) and its part in its slot are one WorkerSlot, and
// every transition is a named row of one table (worker_state.cpp) from a slot
// and an event to the next slot and the actions to carry out. The supervisor
// feeds events in and carries out the actions that come back; nothing here
// touches a process or a clock.
#pragma once

#include <string_view>
#include <vector>

namespace scgi::manager {

enum class WorkerState { starting, ready, draining, stopping, backoff, stopped };
enum class Wanted { up, down };

// A worker's part in its slot (its SCGI_WORKER index): the slot's own worker;
// a successor started to take over from it once ready (a recycle, a rolling
// restart, a stuck worker); or one that leaves the pool once stopped (taken
// over, scaled away, or a successor that failed to start).
enum class SlotRole { serving, successor, retiring };

struct WorkerSlot {
  WorkerState state = WorkerState::stopped;
  Wanted wanted = Wanted::up;
  SlotRole role = SlotRole::serving;
  bool held = false;  // drained by hand (scgictl drain): routed, but given no new request
  bool operator==(const WorkerSlot&) const = default;
};

enum class WorkerEvent {
  spawn_failed,   // fork/exec failed (no such file, no permission…): a failed start
  became_ready,   // its socket accepted the readiness probe
  ready_timeout,  // not ready within ready_timeout: a failed start
  exited,         // the process ended, whatever the state
  stop,           // stop the process (drain first); a slot wanted up starts again
  halt,           // wanted down from now on (scgictl stop, shutdown), then as stop
  retire,         // leave the pool (taken over, scaled away): wanted down, then as stop
  drained,        // nothing in flight on it any more
  stop_timeout,   // stop_timeout passed while draining or after SIGTERM
  backoff_done,   // the restart delay passed
  start,          // wanted up (again); a stopped worker starts
  hold,           // drained by hand: no new request until released
  release,        // undrained by hand: requests again
};

enum class WorkerAction {
  spawn,             // start the process; report spawn_failed, or wait for became_ready
  probe,             // probe its socket until it accepts, within ready_timeout
  route,             // tell the balancer: ready
  take_over,         // a successor serves now: the slot's other workers retire
  give_up,           // a successor failed to start: the slot's worker keeps serving
  drain,             // tell the balancer: no new requests; report drained when idle
  hold_back,         // tell the balancer: no new requests (it stays, held by hand)
  let_in,            // tell the balancer: requests again
  unroute,           // tell the balancer: gone
  terminate,         // SIGTERM to its process group, then wait up to stop_timeout
  kill,              // SIGKILL to its process group
  count_failure,     // a failed start or an exit while wanted up: feeds backoff and "failing"
  schedule_restart,  // wait out the backoff delay, then report backoff_done
};

struct Transition {
  WorkerSlot next;
  std::vector<WorkerAction> actions;
  bool valid = true;  // false: the event means nothing here (ignored, nothing changes)
};

// The row of the table for (slot, event).
Transition transition(const WorkerSlot& slot, WorkerEvent event);

std::string_view name(WorkerState state);  // "starting", … as in metrics and status
std::string_view name(WorkerEvent event);
std::string_view name(WorkerAction action);
std::string_view name(SlotRole role);

}  // namespace scgi::manager
