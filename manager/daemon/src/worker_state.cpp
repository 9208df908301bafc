#include "worker_state.hpp"

namespace scgi::manager {
namespace {

using enum WorkerState;
using enum WorkerEvent;
using A = WorkerAction;

// A row: the next state with the slot's wanted and role unchanged.
struct Row {
  WorkerState next;
  std::vector<WorkerAction> actions;
  bool valid = true;
};

// What happens after the process is gone: back up (after the backoff delay) if
// it is wanted up, else it stays stopped.
Row after_exit(Wanted wanted, std::vector<WorkerAction> actions) {
  if (wanted == Wanted::up) {
    actions.push_back(A::schedule_restart);
    return {backoff, std::move(actions)};
  }
  return {stopped, std::move(actions)};
}

Row ignored(WorkerState state) {
  return {state, {}, false};
}

// The process's side: what an event does in each state, given what is wanted.
Row process_row(WorkerState state, WorkerEvent event, Wanted wanted) {
  switch (state) {
    case starting:
      switch (event) {
        case spawn_failed:
          return after_exit(wanted, {A::count_failure});
        case became_ready:
          if (wanted == Wanted::down) return {stopping, {A::terminate}};
          return {ready, {A::route}};
        case ready_timeout:
          // A failed start: it never served, so it is killed at once and the
          // slot waits out the backoff like any other failure.
          if (wanted == Wanted::up)
            return {backoff, {A::count_failure, A::kill, A::schedule_restart}};
          return {stopping, {A::kill}};
        case exited:
          return after_exit(wanted, {A::count_failure});
        case stop:
          return {stopping, {A::terminate}};  // never routed: nothing to drain
        default:
          return ignored(state);
      }
    case ready:
      switch (event) {
        case exited:
          // Died while serving: only its requests in flight are lost.
          return after_exit(wanted, {A::unroute, A::count_failure});
        case stop:
          return {draining, {A::drain}};
        default:
          return ignored(state);
      }
    case draining:
      switch (event) {
        case drained:
        case stop_timeout:  // requests still in flight after stop_timeout: stop anyway
          return {stopping, {A::unroute, A::terminate}};
        case exited:
          return after_exit(wanted, {A::unroute, A::count_failure});
        default:
          return ignored(state);
      }
    case stopping:
      switch (event) {
        case exited:
          // Stopped on purpose: not a failure; a wanted-up slot comes back
          // (recycling) without waiting out a failure backoff.
          if (wanted == Wanted::up) return {starting, {A::spawn, A::probe}};
          return {stopped, {}};
        case stop_timeout:
          return {stopping, {A::kill}};
        default:
          return ignored(state);
      }
    case backoff:
      switch (event) {
        case exited:
          return {backoff, {}};  // the process killed on ready_timeout is reaped
        case backoff_done:
          if (wanted == Wanted::up) return {starting, {A::spawn, A::probe}};
          return {stopped, {}};
        case stop:
          return {stopped, {}};
        default:
          return ignored(state);
      }
    case stopped:
      switch (event) {
        case start:
          return {starting, {A::spawn, A::probe}};
        default:
          return ignored(state);
      }
  }
  return ignored(state);
}

Transition with_slot(WorkerSlot slot, Row row) {
  slot.state = row.next;
  return {slot, std::move(row.actions), row.valid};
}

}  // namespace

Transition transition(const WorkerSlot& slot, WorkerEvent event) {
  // A successor that is still starting either takes over or is given up: a
  // failed successor is no failure of the slot, whose worker keeps serving.
  if (slot.role == SlotRole::successor && slot.state == starting) {
    WorkerSlot next = slot;  // a drain by hand carries over
    switch (event) {
      case became_ready:
        next.role = SlotRole::serving;
        return with_slot(next, {ready, {A::route, A::take_over}});
      case spawn_failed:
      case exited:
      case ready_timeout:
        next.wanted = Wanted::down;
        next.role = SlotRole::retiring;
        if (event == ready_timeout) return with_slot(next, {stopping, {A::give_up, A::kill}});
        return with_slot(next, {stopped, {A::give_up}});
      default:
        break;
    }
  }
  switch (event) {
    case halt:
    case retire: {
      // What is wanted changes even where the process has nothing to do.
      WorkerSlot down = slot;
      down.wanted = Wanted::down;
      // A successor stopped before it took over leaves: the slot keeps its worker.
      if (event == retire || slot.role == SlotRole::successor) down.role = SlotRole::retiring;
      const Row row = process_row(slot.state, stop, Wanted::down);
      if (!row.valid) return {down, {}, down != slot};
      return with_slot(down, row);
    }
    case hold:
    case release: {
      // Only a routed worker changes what the balancer does; elsewhere the
      // mark waits for route (a successor starts with its slot's mark).
      if (slot.role == SlotRole::retiring) return with_slot(slot, ignored(slot.state));
      WorkerSlot marked = slot;
      marked.held = event == hold;
      if (marked == slot) return {slot, {}, false};
      if (slot.state != ready) return {marked, {}};
      return {marked, {event == hold ? A::hold_back : A::let_in}};
    }
    case start: {
      if (slot.role == SlotRole::retiring) return with_slot(slot, ignored(slot.state));
      WorkerSlot up = slot;
      up.wanted = Wanted::up;
      const Row row = process_row(slot.state, start, Wanted::up);
      if (!row.valid) return {up, {}, up != slot};  // comes back up once stopped
      return with_slot(up, row);
    }
    default:
      return with_slot(slot, process_row(slot.state, event, slot.wanted));
  }
}

std::string_view name(WorkerState state) {
  switch (state) {
    case starting:
      return "starting";
    case ready:
      return "ready";
    case draining:
      return "draining";
    case stopping:
      return "stopping";
    case backoff:
      return "backoff";
    case stopped:
      return "stopped";
  }
  return "?";
}

std::string_view name(WorkerEvent event) {
  switch (event) {
    case spawn_failed:
      return "spawn_failed";
    case became_ready:
      return "became_ready";
    case ready_timeout:
      return "ready_timeout";
    case exited:
      return "exited";
    case stop:
      return "stop";
    case halt:
      return "halt";
    case retire:
      return "retire";
    case drained:
      return "drained";
    case stop_timeout:
      return "stop_timeout";
    case backoff_done:
      return "backoff_done";
    case start:
      return "start";
    case hold:
      return "hold";
    case release:
      return "release";
  }
  return "?";
}

std::string_view name(WorkerAction action) {
  switch (action) {
    case A::spawn:
      return "spawn";
    case A::probe:
      return "probe";
    case A::route:
      return "route";
    case A::take_over:
      return "take_over";
    case A::give_up:
      return "give_up";
    case A::drain:
      return "drain";
    case A::hold_back:
      return "hold_back";
    case A::let_in:
      return "let_in";
    case A::unroute:
      return "unroute";
    case A::terminate:
      return "terminate";
    case A::kill:
      return "kill";
    case A::count_failure:
      return "count_failure";
    case A::schedule_restart:
      return "schedule_restart";
  }
  return "?";
}

std::string_view name(SlotRole role) {
  switch (role) {
    case SlotRole::serving:
      return "serving";
    case SlotRole::successor:
      return "successor";
    case SlotRole::retiring:
      return "retiring";
  }
  return "?";
}

}  // namespace scgi::manager
