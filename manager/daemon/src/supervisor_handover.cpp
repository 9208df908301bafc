// The supervisor's side of an upgrade (docs/operations.md, "Upgrading"): what
// the next image needs to go on supervising the same worker processes, each
// where it was in its life (its slot, process, socket, backoff, counters), and
// taking that over. The workers never notice: they stay children of the same
// PID, their sockets and output pipes stay open across the exec.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <limits>

#include "pool_supervisor.hpp"
#include "pool_worker.hpp"
#include "scgi/log.hpp"
#include "scgi/runtime/handover_bytes.hpp"
#include "scgi/runtime/program_upgrade.hpp"
#include "supervisor.hpp"

namespace scgi::manager {
namespace {

using nlohmann::json;

std::int64_t to_json_time(Clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

// steady_clock is CLOCK_MONOTONIC, which an exec does not reset.
Clock::time_point from_json_time(const json& in) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(
      std::chrono::nanoseconds(in.get<std::int64_t>())));
}

// An enum from the name its name() gives, among `values`.
template <class E, std::size_t N>
E enum_from_json(const json& in, const std::array<E, N>& values) {
  const std::string text = in.get<std::string>();
  for (const E value : values)
    if (name(value) == text) return value;
  throw std::runtime_error("unknown value '" + text + "'");
}

constexpr std::array kStates{WorkerState::starting, WorkerState::ready,   WorkerState::draining,
                             WorkerState::stopping, WorkerState::backoff, WorkerState::stopped};
constexpr std::array kRoles{SlotRole::serving, SlotRole::successor, SlotRole::retiring};

std::string wanted_name(Wanted wanted) {
  return wanted == Wanted::up ? "up" : "down";
}

// A descriptor of the handed state: open again for this image, or an error.
int adopted(const json& in, const char* what) {
  const int fd = in.get<int>();
  if (fd < 0) return -1;
  if (!adopt_descriptor(fd))
    throw std::runtime_error(std::string("the handed ") + what + " (descriptor " +
                             std::to_string(fd) + ") is not open");
  return fd;
}

// Worker output of the handed state (a partial line, a kept line): its bytes,
// or an error for text no image wrote. Neither ever holds a newline.
std::string handed_output(const json& in, const char* what) {
  const auto bytes = bytes_from_json_text(in.get<std::string>());
  if (!bytes) throw std::runtime_error(std::string("a ") + what + " that is not worker bytes");
  if (bytes->find('\n') != std::string::npos)
    throw std::runtime_error(std::string("a ") + what + " with a newline in it");
  return *bytes;
}

// A descriptor number used as a key ("partial_lines").
int descriptor_key(const std::string& key) {
  int fd = -1;
  const auto [end, error] = std::from_chars(key.data(), key.data() + key.size(), fd);
  if (error != std::errc() || end != key.data() + key.size() || fd < 0)
    throw std::runtime_error("'" + key + "' is not a descriptor");
  return fd;
}

// The worker output the next image takes on (both keys may be missing: a
// previous program that handed none): the line each output pipe is in the
// middle of, by descriptor, and the pool's kept lines for `scgictl logs`.
std::map<int, std::string> handed_partial_lines(const json& pool) {
  std::map<int, std::string> out;
  const json partial_lines = pool.value("partial_lines", json::object());
  for (const auto& [fd, text] : partial_lines.items())
    out[descriptor_key(fd)] = handed_output(text, "partial output line");
  return out;
}

std::vector<WorkerLogs::RecentLine> handed_recent_lines(const json& pool) {
  std::vector<WorkerLogs::RecentLine> out;
  const json recent_lines = pool.value("recent_lines", json::array());
  for (const json& line : recent_lines) {
    // get<std::uint32_t>() would take -1 for a worker.
    const json& worker = line.at("worker");
    if (!worker.is_number_integer() || worker.get<std::int64_t>() < 0 ||
        worker.get<std::int64_t>() > std::numeric_limits<std::uint32_t>::max())
      throw std::runtime_error("a kept output line of no worker");
    out.push_back(
        {worker.get<std::uint32_t>(), handed_output(line.at("line"), "kept output line")});
  }
  return out;
}

constexpr std::array<std::pair<const char*, int>, 4> kRestartReasons{
    {{"exit", 0}, {"signal", 1}, {"recycle", 2}, {"health", 3}}};

}  // namespace

// --- One pool. ---

json PoolSupervisor::handover_state(std::vector<int>& descriptors) const {
  json workers = json::array();
  for (const WorkerPtr& worker : workers_) {
    json socket = nullptr;
    if (worker->socket) {
      socket = {{"address", worker->socket->address().to_string()},
                {"listen_fd", worker->socket->listen_fd()},
                {"folder_fd", worker->socket->folder_fd()}};
      for (const int fd : {worker->socket->listen_fd(), worker->socket->folder_fd()})
        if (fd >= 0) descriptors.push_back(fd);
    }
    const int pinned_fd = worker->pinned ? worker->pinned->fd() : -1;
    if (pinned_fd >= 0) descriptors.push_back(pinned_fd);
    workers.push_back(
        {{"index", worker->index},
         {"instance", worker->instance},
         {"state", manager::name(worker->slot.state)},
         {"wanted", wanted_name(worker->slot.wanted)},
         {"role", manager::name(worker->slot.role)},
         {"held", worker->slot.held},
         {"pid", worker->pid},
         {"socket", socket},
         {"pinned_fd", pinned_fd},
         {"started_at", to_json_time(worker->started_at)},
         {"ready_since", to_json_time(worker->ready_since)},
         {"stayed_up_counted", worker->stayed_up_counted},
         {"failures_in_a_row", worker->backoff.failures_in_a_row()},
         {"restart_delay_ms", worker->restart_delay.count()},
         {"restarts", worker->restarts},
         {"last_exit", worker->last_exit},
         {"recycle_retry_at", to_json_time(worker->recycle_retry_at)},
         // Its timer (stop_timeout, the backoff delay) goes on, not anew.
         {"deadline_at",
          worker->deadline ? json(to_json_time(worker->deadline_at)) : json(nullptr)},
         {"requests", worker->backend ? worker->backend->requests() : 0},
         // Shown until the next image samples /proc: CPU never goes back.
         {"usage",
          {{"rss_bytes", worker->usage.rss_bytes}, {"cpu_seconds", worker->usage.cpu_seconds}}}});
  }
  json restarts = json::object();
  for (const auto& [label, value] : kRestartReasons) {
    const auto it = restarts_.find(static_cast<RestartReason>(value));
    restarts[label] = it == restarts_.end() ? 0 : it->second;
  }
  json failures = json::array();
  for (const auto time : failing_.recent_failures())
    failures.push_back(to_json_time(time));
  return {{"target", target_},
          {"next_instance", next_instance_},
          {"restarts", restarts},
          {"failures", failures},
          {"failing", failing_.failing()},
          {"workers", workers},
          {"slow_requests", slow_requests_}};
}

void PoolSupervisor::check_handover(const json& state) {
  state.at("target").get<std::uint32_t>();
  state.at("next_instance").get<std::uint32_t>();
  for (const auto& [label, count] : state.at("restarts").items())
    count.get<std::uint64_t>();
  for (const json& time : state.at("failures"))
    from_json_time(time);
  state.at("failing").get<bool>();
  state.value("slow_requests", std::uint64_t{0});  // absent from images before it
  for (const json& worker : state.at("workers")) {
    worker.at("index").get<std::uint32_t>();
    worker.at("instance").get<std::uint32_t>();
    enum_from_json(worker.at("state"), kStates);
    enum_from_json(worker.at("role"), kRoles);
    worker.at("wanted").get<std::string>();
    worker.at("held").get<bool>();
    worker.at("pid").get<pid_t>();
    if (const json& socket = worker.at("socket"); !socket.is_null()) {
      auto address = parse_address(socket.at("address").get<std::string>());
      if (!address) throw std::runtime_error(address.error());
      socket.at("listen_fd").get<int>();
      socket.at("folder_fd").get<int>();
    }
    worker.at("pinned_fd").get<int>();
    for (const char* time : {"started_at", "ready_since", "recycle_retry_at"})
      from_json_time(worker.at(time));
    worker.at("stayed_up_counted").get<bool>();
    worker.at("failures_in_a_row").get<int>();
    worker.at("restart_delay_ms").get<std::int64_t>();
    worker.at("restarts").get<std::uint32_t>();
    worker.at("last_exit").get<std::string>();
    worker.at("requests").get<std::uint64_t>();
    if (const json& usage = worker.value("usage", json::object()); !usage.empty()) {
      usage.at("rss_bytes").get<std::uint64_t>();
      usage.at("cpu_seconds").get<double>();
    }
    if (const json& deadline = worker.value("deadline_at", json()); !deadline.is_null())
      from_json_time(deadline);
  }
}

void PoolSupervisor::adopt(const json& state) {
  target_ = state.at("target").get<std::uint32_t>();
  next_instance_ = state.at("next_instance").get<std::uint32_t>();
  for (const auto& [label, value] : kRestartReasons)
    restarts_[static_cast<RestartReason>(value)] = state.at("restarts").value(label, 0ULL);
  std::deque<Clock::time_point> failures;
  for (const json& time : state.at("failures"))
    failures.push_back(from_json_time(time));
  failing_.restore(std::move(failures), state.at("failing").get<bool>());
  slow_requests_ = state.value("slow_requests", std::uint64_t{0});

  for (const json& in : state.at("workers")) {
    auto worker =
        std::make_shared<Worker>(in.at("index").get<std::uint32_t>(),
                                 in.at("instance").get<std::uint32_t>(), config_.restart_backoff);
    worker->slot = {
        .state = enum_from_json(in.at("state"), kStates),
        .wanted = in.at("wanted").get<std::string>() == "up" ? Wanted::up : Wanted::down,
        .role = enum_from_json(in.at("role"), kRoles),
        .held = in.at("held").get<bool>()};
    worker->pid = in.at("pid").get<pid_t>();
    if (const json& usage = in.value("usage", json::object()); !usage.empty())
      worker->usage = {.rss_bytes = usage.at("rss_bytes").get<std::uint64_t>(),
                       .cpu_seconds = usage.at("cpu_seconds").get<double>()};
    if (const json& socket = in.at("socket"); !socket.is_null())
      worker->socket.emplace(WorkerSocket::adopt(
          config_.socket, parse_address(socket.at("address").get<std::string>()).value(),
          adopted(socket.at("listen_fd"), "worker socket"),
          adopted(socket.at("folder_fd"), "socket folder")));
    if (const int fd = adopted(in.at("pinned_fd"), "pinned socket"); fd >= 0)
      worker->pinned = std::make_shared<PinnedSocket>(fd);
    worker->started_at = from_json_time(in.at("started_at"));
    worker->ready_since = from_json_time(in.at("ready_since"));
    worker->stayed_up_counted = in.at("stayed_up_counted").get<bool>();
    worker->backoff.restore(in.at("failures_in_a_row").get<int>());
    worker->restart_delay = Milliseconds(in.at("restart_delay_ms").get<std::int64_t>());
    worker->restarts = in.at("restarts").get<std::uint32_t>();
    worker->last_exit = in.at("last_exit").get<std::string>();
    worker->recycle_retry_at = from_json_time(in.at("recycle_retry_at"));
    worker->limits = limits_for_new_process(config_, random_);
    workers_.push_back(worker);  // handed over in index order
    // What is left of its timer: the previous image's deadline stands.
    const json& deadline = in.value("deadline_at", json());
    const auto left = [&](std::chrono::nanoseconds full) -> std::chrono::nanoseconds {
      if (deadline.is_null()) return full;
      return std::max(std::chrono::nanoseconds(0),
                      std::chrono::duration_cast<std::chrono::nanoseconds>(
                          from_json_time(deadline) - clock_.now()));
    };

    // Each where it was: its timer armed again, its backend back in the pool.
    switch (worker->slot.state) {
      case WorkerState::ready: {
        const Address target =
            worker->pinned ? worker->pinned->address() : worker->socket->address();
        auto endpoints = resolve_endpoints(target);
        if (!endpoints) {
          log_error("{}: pid {}: {}; restarting it", worker_name(*worker), worker->pid,
                    endpoints.error());
          post_event(worker, WorkerEvent::stop);
          break;
        }
        worker->endpoints = std::move(endpoints).value();
        add_to_balancer(worker);
        worker->backend->carry_requests(in.at("requests").get<std::uint64_t>());
        break;
      }
      case WorkerState::starting:
        probe(worker, worker->started_at + config_.ready_timeout);
        break;
      case WorkerState::draining:
        // Nothing is in flight on it: the previous image let every request end.
        arm_deadline(worker, left(config_.stop_timeout), WorkerEvent::stop_timeout);
        post_event(worker, WorkerEvent::drained);
        break;
      case WorkerState::stopping:
        arm_deadline(worker, left(config_.stop_timeout), WorkerEvent::stop_timeout);
        break;
      case WorkerState::backoff:
        arm_deadline(worker, left(worker->restart_delay), WorkerEvent::backoff_done);
        break;
      case WorkerState::stopped:
        break;
    }
  }
  arm_tick();
}

// --- Every pool. ---

json Supervisor::handover_state(std::vector<int>& descriptors) const {
  json pools = json::object();
  for (const auto& [name, pool] : pools_) {
    json state = pool->handover_state(descriptors);
    json outputs = json::object();
    json partial_lines = json::object();
    for (const json& worker : state.at("workers")) {
      const pid_t pid = worker.at("pid").get<pid_t>();
      if (pid <= 0) continue;
      std::vector<int> fds;
      for (const auto& pipe : launcher_.output_pipes(pid)) {
        fds.push_back(pipe.fd);
        if (!pipe.partial.empty())
          partial_lines[std::to_string(pipe.fd)] = bytes_to_json_text(pipe.partial);
      }
      descriptors.insert(descriptors.end(), fds.begin(), fds.end());
      outputs[std::to_string(pid)] = fds;
    }
    state["outputs"] = outputs;
    state["partial_lines"] = partial_lines;
    json recent_lines = json::array();
    for (const auto& [worker, line] : logs_.kept_lines(name))
      recent_lines.push_back({{"worker", worker}, {"line", bytes_to_json_text(line)}});
    state["recent_lines"] = recent_lines;
    pools[name] = state;
  }
  return {{"runtime_dir", runtime_dir_}, {"pools", pools}};
}

std::optional<std::string> Supervisor::check_handover(const json& state) {
  try {
    state.at("runtime_dir").get<std::string>();
    for (const auto& [name, pool] : state.at("pools").items()) {
      PoolSupervisor::check_handover(pool);
      for (const auto& [pid, fds] : pool.at("outputs").items())
        fds.get<std::vector<int>>();
      handed_partial_lines(pool);
      handed_recent_lines(pool);
    }
  } catch (const std::exception& e) {
    return std::string("the supervisor's part: ") + e.what();
  }
  return std::nullopt;
}

void Supervisor::adopt_pools(const json& state) {
  const json& pools = state.at("pools");
  for (const auto& [name, pool] : pools.items()) {
    const auto it = pools_.find(name);
    if (it == pools_.end()) {
      // Gone from the file since the previous image read it: its workers stop,
      // its descriptors close (none may reach a worker started from now on).
      for (const json& worker : pool.at("workers")) {
        if (const pid_t pid = worker.at("pid").get<pid_t>(); pid > 0) {
          log_warn("pool {}: no longer in {}: stopping its worker pid {}", name, config_.path, pid);
          ::kill(-pid, SIGTERM);
        }
        std::vector<int> fds{worker.at("pinned_fd").get<int>()};
        if (const json& socket = worker.at("socket"); !socket.is_null()) {
          fds.push_back(socket.at("listen_fd").get<int>());
          fds.push_back(socket.at("folder_fd").get<int>());
        }
        for (const int fd : fds)
          if (fd >= 0) ::close(fd);
      }
      for (const auto& [pid, fds] : pool.at("outputs").items())
        for (const int fd : fds.get<std::vector<int>>())
          ::close(fd);
      continue;
    }
    it->second->adopt(pool);
    // The lines from before the upgrade first, then what the workers write on.
    logs_.adopt_kept_lines(name, handed_recent_lines(pool));
    const std::map<int, std::string> partial_lines = handed_partial_lines(pool);
    for (const json& worker : pool.at("workers")) {
      const pid_t pid = worker.at("pid").get<pid_t>();
      if (pid <= 0 || !pool.at("outputs").contains(std::to_string(pid))) continue;
      for (const int fd : pool.at("outputs").at(std::to_string(pid)).get<std::vector<int>>()) {
        if (!adopt_descriptor(fd)) continue;
        const auto partial = partial_lines.find(fd);
        launcher_.adopt_output(name, worker.at("index").get<std::uint32_t>(), pid, fd,
                               partial == partial_lines.end() ? "" : partial->second);
      }
    }
  }
  for (auto& [name, pool] : pools_)
    if (!pools.contains(name)) pool->start();  // new in the file: started as at a start
}

}  // namespace scgi::manager
