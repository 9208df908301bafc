// The life of one worker slot as a state machine: states and events are
// enums, what is wanted of the slot (up or down) is kept apart from its state,
// and every transition is a named row of one state × event table
// (worker_state.cpp). The supervisor feeds events in and carries out the
// actions that come back; nothing here touches a process or a clock.
#pragma once

#include <string_view>
#include <vector>

namespace scgi::manager {

enum class WorkerState { starting, ready, draining, stopping, backoff, stopped };
enum class Wanted { up, down };

enum class WorkerEvent {
  spawn_failed,   // fork/exec failed (no such file, no permission…): a failed start
  became_ready,   // its socket accepted the readiness probe
  ready_timeout,  // not ready within ready_timeout: a failed start
  exited,         // the process ended, whatever the state
  stop,           // stop it (by hand, for a recycle, a scale-down or shutdown): drain first
  drained,        // nothing in flight on it any more
  stop_timeout,   // stop_timeout passed while draining or after SIGTERM
  backoff_done,   // the restart delay passed
  start,          // wanted up again after a stop
};

enum class WorkerAction {
  spawn,             // start the process; report spawn_failed, or wait for became_ready
  probe,             // probe its socket until it accepts, within ready_timeout
  route,             // tell the balancer: ready
  drain,             // tell the balancer: no new requests; report drained when idle
  unroute,           // tell the balancer: gone
  terminate,         // SIGTERM to its process group, then wait up to stop_timeout
  kill,              // SIGKILL to its process group
  count_failure,     // a failed start or an exit while wanted up: feeds backoff and "failing"
  schedule_restart,  // wait out the backoff delay, then report backoff_done
};

struct Transition {
  WorkerState next;
  std::vector<WorkerAction> actions;
  bool valid = true;  // false: the event means nothing in this state (ignored)
};

// The row of the table for (state, event), given what is wanted.
Transition transition(WorkerState state, WorkerEvent event, Wanted wanted);

std::string_view name(WorkerState state);  // "starting", … as in metrics and status
std::string_view name(WorkerEvent event);
std::string_view name(WorkerAction action);

}  // namespace scgi::manager
