#include "worker_state.hpp"

namespace scgi::manager {
namespace {

using enum WorkerState;
using enum WorkerEvent;
using A = WorkerAction;

// What happens after the process is gone: back up (after the backoff delay) if
// it is wanted up, else it stays stopped.
Transition after_exit(Wanted wanted, std::vector<WorkerAction> actions) {
  if (wanted == Wanted::up) {
    actions.push_back(A::schedule_restart);
    return {backoff, std::move(actions)};
  }
  return {stopped, std::move(actions)};
}

Transition ignored(WorkerState state) {
  return {state, {}, false};
}

}  // namespace

Transition transition(WorkerState state, WorkerEvent event, Wanted wanted) {
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
    case drained:
      return "drained";
    case stop_timeout:
      return "stop_timeout";
    case backoff_done:
      return "backoff_done";
    case start:
      return "start";
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
    case A::drain:
      return "drain";
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

}  // namespace scgi::manager
