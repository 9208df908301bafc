#include "control_server.hpp"

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/read_until.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "scgi/log.hpp"
#include "scgi/runtime/unix_socket_file.hpp"
#include "scgi/units.hpp"

namespace scgi::manager {
namespace {

using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;
using Socket = asio::local::stream_protocol::socket;
using Acceptor = asio::local::stream_protocol::acceptor;
using control::Command;
using control::Request;
using nlohmann::json;

constexpr auto kNoThrow = as_tuple(asio::use_awaitable);
constexpr int kBacklog = 64;

std::string errno_text(int error = errno) {
  return std::strerror(error);
}

// The user that connected, as the kernel saw it at connect().
struct Peer {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

std::optional<Peer> peer_of(int fd, std::string& error) {
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
    error = "cannot tell who connected (SO_PEERCRED): " + errno_text();
    return std::nullopt;
  }
  return Peer{credentials.pid, credentials.uid, credentials.gid};
}

// The peer process's supplementary groups, straight from the socket
// (SO_PEERGROUPS, Linux 4.13): what the process really holds right now.
bool peer_groups_contain(int fd, gid_t group) {
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    auto length = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &length) == 0) {
      groups.resize(length / sizeof(gid_t));
      return std::find(groups.begin(), groups.end(), group) != groups.end();
    }
    if (errno != ERANGE) return false;
    groups.resize(length / sizeof(gid_t) + 1);  // the kernel said how many it holds
  }
  return false;
}

// The user database's view: the peer's user is listed in the group, or the
// group is one of the user's groups (getgrouplist).
bool user_database_says_member(uid_t uid, gid_t wanted) {
  std::vector<char> buffer(16 * 1024);
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) != 0 || found == nullptr)
    return false;
  const std::string name = entry.pw_name;
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    int count = static_cast<int>(groups.size());
    if (::getgrouplist(name.c_str(), entry.pw_gid, groups.data(), &count) >= 0) {
      groups.resize(static_cast<std::size_t>(count));
      if (std::find(groups.begin(), groups.end(), wanted) != groups.end()) return true;
      break;
    }
    groups.resize(static_cast<std::size_t>(count) + 1);
  }
  std::vector<char> group_buffer(64 * 1024);
  struct group group_entry {};
  struct group* group_found = nullptr;
  if (::getgrgid_r(wanted, &group_entry, group_buffer.data(), group_buffer.size(), &group_found) !=
          0 ||
      group_found == nullptr)
    return false;
  for (char** member = group_entry.gr_mem; member != nullptr && *member != nullptr; ++member)
    if (name == *member) return true;
  return false;
}

// Creates the missing folders of `folder`, each 0755 whatever the umask.
bool make_folders(const std::string& folder, std::string& error) {
  if (folder.empty()) return true;
  std::size_t position = 0;
  while (position != std::string::npos) {
    position = folder.find('/', position + 1);
    const std::string prefix = folder.substr(0, position);
    if (prefix.empty()) continue;
    struct stat info {};
    if (::stat(prefix.c_str(), &info) == 0) {
      if (!S_ISDIR(info.st_mode)) {
        error = "cannot create the control socket's folder: " + prefix + " is not a folder";
        return false;
      }
      continue;
    }
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      error = "cannot create the control socket's folder " + prefix + ": " + errno_text();
      return false;
    }
    ::chmod(prefix.c_str(), 0755);
  }
  return true;
}

// What the messages about the control socket's file tell the user.
const UnixSocketWording kControlSocketWording{
    .live_owner = "another scgi-manager is running",
    .other_path = "set another [manager] control_socket",
    .group_setting = "control_group",
};

}  // namespace

namespace detail {

// One accepted client. Lives in its coroutine's frame; the server reaches it
// through the registry to close it.
struct ControlConnection {
  explicit ControlConnection(Socket accepted) : socket(std::move(accepted)) {}

  Socket socket;
  Peer peer{};
  bool admitted = false;  // counted against the connection limits of its user
  // `logs` with follow: lines waiting to be written, and the writer's wake-up.
  bool subscribed = false;
  std::uint64_t subscription = 0;
  std::string pending_log;
  bool log_overflowed = false;
  std::optional<asio::steady_timer> log_wake;

  void close() {
    asio::error_code ignored;
    socket.close(ignored);
    if (log_wake) log_wake->cancel();
  }
};

}  // namespace detail

using detail::ControlConnection;

struct ControlServer::State {
  State(asio::io_context& context, ControlHandler& handler_in, ControlServerLimits limits_in)
      : handler(handler_in), limits(limits_in), acceptor(context) {}

  ControlHandler& handler;
  const ControlServerLimits limits;
  Acceptor acceptor;
  bool closed = false;
  std::string path;
  std::string group_name;
  std::optional<gid_t> group;
  uid_t own_uid = ::geteuid();
  pid_t own_pid = ::getpid();
  std::uint64_t next_connection = 0;
  std::map<std::uint64_t, ControlConnection*> connections;

  // Why this peer may not use the socket, or nullopt when it may.
  std::optional<std::string> refusal(int fd, const Peer& peer) const {
    // The manager never talks to itself here: such a connection comes from a
    // path that led back to this socket (a worker's socket made a symlink).
    if (limits.refuse_own_process && peer.pid == own_pid)
      return "a connection from scgi-manager itself (a worker's socket path that leads here?)";
    if (peer.uid == 0 || peer.uid == own_uid) return std::nullopt;
    if (group) {
      if (peer.gid == *group || peer_groups_contain(fd, *group) ||
          user_database_says_member(peer.uid, *group))
        return std::nullopt;
      return fmt::format(
          "permission denied: uid {} is not root, the manager's user or in control_group {}",
          peer.uid, group_name);
    }
    return fmt::format(
        "permission denied: uid {} is not root or the manager's user (uid {}); set [manager] "
        "control_group to let a group use scgictl",
        peer.uid, own_uid);
  }

  // Root and the manager's own user: the administrators this socket exists for.
  bool is_owner(uid_t uid) const { return uid == 0 || uid == own_uid; }

  // Why one more connection of this peer would be too many, or nullopt. Owners
  // share one budget and everyone else another, each user at most
  // max_connections_per_user of it: a control_group member filling its share
  // takes nothing from root.
  std::optional<std::string> over_limit(const Peer& peer) const {
    std::size_t same_class = 0;
    std::size_t same_user = 0;
    for (const auto& [id, connection] : connections) {
      if (!connection->admitted || is_owner(connection->peer.uid) != is_owner(peer.uid)) continue;
      ++same_class;
      if (connection->peer.uid == peer.uid) ++same_user;
    }
    if (!is_owner(peer.uid) && same_user >= limits.max_connections_per_user)
      return fmt::format(
          "too many control connections: uid {} has {} open, the most one user may hold; close "
          "one and try again",
          peer.uid, same_user);
    if (same_class >= limits.max_connections)
      return fmt::format("too many control connections: {} are open; try again", same_class);
    return std::nullopt;
  }

  void end_log_stream(ControlConnection& connection) {
    if (!connection.subscribed) return;
    connection.subscribed = false;
    handler.unsubscribe_logs(connection.subscription);
  }
};

namespace {

using State = ControlServer::State;

// Keeps a connection in the server's registry for the life of its coroutine,
// and ends its log stream however the coroutine ends.
class Registration {
 public:
  Registration(std::shared_ptr<State> state, ControlConnection& connection)
      : state_(std::move(state)), connection_(connection), id_(++state_->next_connection) {
    state_->connections.emplace(id_, &connection_);
  }
  ~Registration() {
    state_->end_log_stream(connection_);
    state_->connections.erase(id_);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

 private:
  std::shared_ptr<State> state_;
  ControlConnection& connection_;
  std::uint64_t id_;
};

// Writes all of `bytes`, or gives up after `timeout` (a client that does not
// read its replies). False when the connection is no longer usable.
asio::awaitable<bool> write_all(Socket& socket, std::string_view bytes,
                                std::chrono::milliseconds timeout) {
  asio::steady_timer timer(socket.get_executor(), timeout);
  auto outcome =
      co_await (asio::async_write(socket, asio::buffer(bytes.data(), bytes.size()), kNoThrow) ||
                timer.async_wait(kNoThrow));
  if (outcome.index() != 0) co_return false;
  co_return !std::get<0>(std::get<0>(outcome));
}

// An ok reply with one field. Not inline in the coroutines: g++ 12 mis-compiles
// braced initializer lists there ("array used as initializer").
template <class T>
std::string reply_with(const json& id, const char* key, const T& value) {
  json fields = json::object();
  fields[key] = value;
  return control::ok_reply(id, std::move(fields));
}

std::string describe(const control::WorkerTarget& target) {
  return control::to_string(target);
}

// status and logs validate their pool and worker through status(): an unknown
// name gets the supervisor's own message.
std::optional<std::string> unknown_target(ControlHandler& handler,
                                          const control::WorkerTarget& target) {
  auto pools = handler.status(target.pool);
  if (!pools) return pools.error();
  for (const auto& pool : pools.value()) {
    if (pool.name != target.pool) continue;
    if (!target.worker) return std::nullopt;
    for (const auto& worker : pool.workers)
      if (worker.index == *target.worker) return std::nullopt;
    std::set<std::uint32_t> known;  // a worker and its replacement share an index
    for (const auto& worker : pool.workers)
      known.insert(worker.index);
    std::string indexes;
    for (const std::uint32_t index : known)
      indexes += (indexes.empty() ? "" : ", ") + std::to_string(index);
    return fmt::format("pool {} has no worker {}; its workers are: {} (see scgictl status {})",
                       target.pool, *target.worker, indexes.empty() ? "none" : indexes,
                       target.pool);
  }
  return fmt::format("no pool named {}", target.pool);
}

// One step of a restart, streamed before its reply: {"progress":"...","id":ID}.
std::string progress_line(const json& id, const std::string& step) {
  json line = json::object();
  line["progress"] = step;
  if (!id.is_null()) line["id"] = id;
  // Invalid UTF-8 (a worker's exit text may carry anything) becomes U+FFFD.
  return line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

// The kernel stacks were read with root's rights: control_group members, who
// may restart and scale, do not see them.
std::string slowlog_reply(ControlHandler& handler, const Request& request, bool owner) {
  auto entries = handler.slowlog(request.pool);
  if (!entries) return control::error_reply(request.id, entries.error());
  std::vector<json> shown = std::move(entries).value();
  if (!owner)
    for (json& entry : shown)
      if (entry.contains("kernel_stack") && !entry.at("kernel_stack").empty()) {
        entry["kernel_stack"] = json::array();
        entry["kernel_stack_error"] = "shown to root and the manager's user only";
      }
  return reply_with(request.id, "entries", shown);
}

// Runs every command but `logs`; returns the reply line. `progress` hears the
// steps of a restart.
asio::awaitable<std::string> execute(State& state, const Request& request, const Peer& peer,
                                     ControlHandler::Progress progress = {}) {
  ControlHandler& handler = state.handler;
  std::optional<Result<std::string>> outcome;
  const auto target = request.target();
  try {
    if (request.command == Command::status) {
      auto pools = handler.status(request.pool);
      if (!pools) co_return control::error_reply(request.id, pools.error());
      co_return reply_with(request.id, "pools", pools.value());
    }
    if (request.command == Command::slowlog)
      co_return slowlog_reply(handler, request, state.is_owner(peer.uid));
    switch (request.command) {
      case Command::start:
        outcome = co_await handler.start(target);
        break;
      case Command::stop:
        outcome = co_await handler.stop(target);
        break;
      case Command::restart:
        outcome = co_await handler.restart(target, std::move(progress));
        break;
      case Command::scale:
        outcome = co_await handler.scale(request.pool, request.workers);
        break;
      case Command::reload:
        outcome = co_await handler.reload();
        break;
      case Command::drain:
        outcome = co_await handler.drain(target, request.wait);
        break;
      case Command::undrain:
        outcome = co_await handler.undrain(target);
        break;
      case Command::status:
      case Command::slowlog:
      case Command::logs:
      case Command::upgrade:  // execute_upgrade()
        break;
    }
  } catch (const std::exception& error) {
    log_error("control: {} {} failed: {}", control::command_name(request.command), describe(target),
              error.what());
    co_return control::error_reply(request.id, std::string("internal error: ") + error.what());
  }
  if (!outcome) co_return control::error_reply(request.id, "command not handled");

  // Who changed what: the control socket is an administrative interface.
  const std::string what =
      request.command == Command::reload || request.command == Command::upgrade
          ? std::string(control::command_name(request.command))
          : fmt::format("{} {}{}", control::command_name(request.command), describe(target),
                        request.command == Command::scale
                            ? fmt::format(" to {} workers", request.workers)
                            : std::string());
  if (*outcome) {
    log_info("control: {} by uid {} (pid {}): {}", what, peer.uid, peer.pid, outcome->value());
    co_return reply_with(request.id, "message", outcome->value());
  }
  log_warn("control: {} by uid {} (pid {}) failed: {}", what, peer.uid, peer.pid, outcome->error());
  co_return control::error_reply(request.id, outcome->error());
}

// An upgrade hands this connection to the next image, which answers it; the
// reply here is a failure's (the upgrade never began, or it was undone).
asio::awaitable<std::string> execute_upgrade(State& state, ControlConnection& connection,
                                             const Request& request) {
  const Peer& peer = connection.peer;
  log_info("control: upgrade by uid {} (pid {})", peer.uid, peer.pid);
  const auto outcome =
      co_await state.handler.upgrade(connection.socket.native_handle(), request.id);
  if (outcome) co_return reply_with(request.id, "message", outcome.value());
  co_return control::error_reply(request.id, outcome.error());
}

// The steps of a restart on their way to the client. The handler's callback
// holds it weakly: a step reported after the command ended goes nowhere.
struct ProgressQueue {
  explicit ProgressQueue(const asio::any_io_executor& executor) : wake(executor) {}
  std::string pending;  // whole lines not written yet
  bool done = false;    // the command has its reply: nothing more will queue
  asio::steady_timer wake;
};

asio::awaitable<void> run_command(State& state, const Request& request, const Peer& peer,
                                  ProgressQueue& queue, ControlHandler::Progress progress,
                                  std::string& reply) {
  reply = co_await execute(state, request, peer, std::move(progress));
  queue.done = true;
  queue.wake.cancel();
}

// Writes the queued steps as they come, until the command is done and every
// step is out. A client that stops reading loses the steps, not the command.
asio::awaitable<void> write_progress(State& state, ControlConnection& connection,
                                     ProgressQueue& queue) {
  for (;;) {
    if (!queue.pending.empty()) {
      const std::string chunk = std::exchange(queue.pending, {});
      if (!co_await write_all(connection.socket, chunk, state.limits.write_timeout)) co_return;
      continue;
    }
    if (queue.done) co_return;
    queue.wake.expires_at(asio::steady_timer::time_point::max());
    co_await queue.wake.async_wait(kNoThrow);
  }
}

// A command that reports progress (restart): its steps stream out while it
// runs, each a line before the reply, which is returned.
asio::awaitable<std::string> execute_with_progress(State& state, ControlConnection& connection,
                                                   const Request& request) {
  auto queue = std::make_shared<ProgressQueue>(connection.socket.get_executor());
  std::weak_ptr<ProgressQueue> weak = queue;
  ControlHandler::Progress progress = [weak, id = request.id](const std::string& step) {
    const auto alive = weak.lock();
    if (!alive || alive->done) return;
    alive->pending += progress_line(id, step);
    alive->wake.cancel();
  };
  std::string reply;
  co_await (run_command(state, request, connection.peer, *queue, std::move(progress), reply) &&
            write_progress(state, connection, *queue));
  co_return reply;
}

// `logs` with follow, after its first reply: queued lines go out as they come
// until the client hangs up, the server closes, or the client falls too far behind.
asio::awaitable<void> stream_logs(State& state, ControlConnection& connection) {
  for (;;) {
    if (connection.log_overflowed) {
      state.end_log_stream(connection);
      const std::string message = fmt::format(
          "log stream stopped: the client fell more than {} bytes behind; run scgictl logs "
          "-f again",
          state.limits.max_log_backlog_bytes);
      co_await write_all(connection.socket, control::error_reply(nullptr, message),
                         state.limits.write_timeout);
      co_return;
    }
    if (connection.pending_log.empty()) {
      connection.log_wake->expires_at(asio::steady_timer::time_point::max());
      co_await connection.log_wake->async_wait(kNoThrow);
      // Woken by a new line, or ended: the server closed, or the client hung up
      // (the `||` in serve() cancels this coroutine).
      const auto cancelled = (co_await asio::this_coro::cancellation_state).cancelled();
      if (state.closed || !connection.socket.is_open() ||
          cancelled != asio::cancellation_type::none)
        co_return;
      continue;
    }
    // New lines keep queueing in pending_log while this chunk is written. A
    // client that takes none of it for write_timeout is gone or stuck.
    const std::string chunk = std::exchange(connection.pending_log, {});
    if (!co_await write_all(connection.socket, chunk, state.limits.write_timeout)) co_return;
  }
}

// Reads and discards whatever the client sends while its log stream runs;
// returns when it hangs up.
asio::awaitable<void> wait_for_hangup(ControlConnection& connection) {
  std::array<char, 4096> discard{};
  for (;;) {
    auto [error, read] =
        co_await connection.socket.async_read_some(asio::buffer(discard), kNoThrow);
    if (error) co_return;
  }
}

// The reply to a `logs` request; with follow (and no error) the connection is
// subscribed, in the same step as the recent lines were taken, so that no
// line falls in between.
std::string start_logs(State& state, ControlConnection& connection, const Request& request) {
  const auto target = request.target();
  try {
    if (auto problem = unknown_target(state.handler, target))
      return control::error_reply(request.id, *problem);
    const auto lines = state.handler.recent_logs(target, request.lines);
    if (request.follow) {
      connection.log_wake.emplace(connection.socket.get_executor());
      ControlConnection* queue = &connection;  // unsubscribed before it goes away
      const std::size_t limit = state.limits.max_log_backlog_bytes;
      connection.subscription =
          state.handler.subscribe_logs(target, [queue, limit](const std::string& line) {
            if (queue->log_overflowed) return;
            queue->pending_log += control::log_line(line);
            if (queue->pending_log.size() > limit) {
              queue->log_overflowed = true;
              queue->pending_log = std::string();  // frees the backlog now
            }
            queue->log_wake->cancel();
          });
      connection.subscribed = true;
    }
    return reply_with(request.id, "lines", lines);
  } catch (const std::exception& error) {
    log_error("control: logs {} failed: {}", describe(target), error.what());
    return control::error_reply(request.id, std::string("internal error: ") + error.what());
  }
}

asio::awaitable<void> serve(std::shared_ptr<State> state, Socket socket) {
  ControlConnection connection(std::move(socket));
  const Registration registration(state, connection);
  const auto write_timeout = state->limits.write_timeout;

  std::string error;
  const auto peer = peer_of(connection.socket.native_handle(), error);
  if (!peer) {
    log_error("control socket: {}", error);
    co_return;
  }
  connection.peer = *peer;
  if (auto refusal = state->refusal(connection.socket.native_handle(), *peer)) {
    log_warn("control socket: refused pid {}: {}", peer->pid, *refusal);
    co_await write_all(connection.socket, control::error_reply(nullptr, *refusal), write_timeout);
    co_return;
  }
  if (auto full = state->over_limit(*peer)) {
    log_warn("control socket: refused pid {} (uid {}): {}", peer->pid, peer->uid, *full);
    co_await write_all(connection.socket, control::error_reply(nullptr, *full), write_timeout);
    co_return;
  }
  connection.admitted = true;

  std::string buffer;
  for (;;) {
    // Idle is waiting for a request line: a command running or a log stream
    // is not, so only this read has the deadline.
    asio::steady_timer idle(connection.socket.get_executor(), state->limits.idle_timeout);
    auto outcome = co_await (
        asio::async_read_until(connection.socket,
                               asio::dynamic_buffer(buffer, control::kMaxRequestBytes + 1), '\n',
                               kNoThrow) ||
        idle.async_wait(kNoThrow));
    if (state->closed) co_return;
    if (outcome.index() == 1) {
      const std::string message =
          fmt::format("no complete request line within {}; closing the connection",
                      format_duration(state->limits.idle_timeout));
      log_info("control socket: closed the idle connection of pid {} (uid {}): {}", peer->pid,
               peer->uid, message);
      co_await write_all(connection.socket, control::error_reply(nullptr, message), write_timeout);
      co_return;
    }
    auto [read_error, length] = std::get<0>(outcome);
    if (read_error == asio::error::not_found) {
      const std::string message = fmt::format(
          "request line longer than {} bytes; closing the connection", control::kMaxRequestBytes);
      co_await write_all(connection.socket, control::error_reply(nullptr, message), write_timeout);
      co_return;
    }
    bool last = false;
    if (read_error) {
      // A last request without its newline still counts (`printf '...' | nc -U`).
      if (read_error != asio::error::eof || buffer.empty()) co_return;
      buffer.push_back('\n');
      length = buffer.size();
      last = true;
    }
    std::string_view line(buffer.data(), length - 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) {  // blank: nothing asked
      buffer.erase(0, length);
      if (last) co_return;
      continue;
    }

    json id;
    auto parsed = control::parse_request(line, id);
    buffer.erase(0, length);
    if (!parsed) {
      if (!co_await write_all(connection.socket, control::error_reply(id, parsed.error()),
                              write_timeout))
        co_return;
    } else if (parsed.value().command == Command::logs) {
      const std::string reply = start_logs(*state, connection, parsed.value());
      if (!co_await write_all(connection.socket, reply, write_timeout)) co_return;
      if (connection.subscribed) {
        co_await (stream_logs(*state, connection) || wait_for_hangup(connection));
        co_return;
      }
    } else {
      // Not a ?: of two co_awaits: g++ 12 destroys the result twice.
      std::string reply;
      if (parsed.value().command == Command::restart)
        reply = co_await execute_with_progress(*state, connection, parsed.value());
      else if (parsed.value().command == Command::upgrade)
        reply = co_await execute_upgrade(*state, connection, parsed.value());
      else
        reply = co_await execute(*state, parsed.value(), connection.peer);
      if (state->closed) co_return;
      if (!co_await write_all(connection.socket, reply, write_timeout)) co_return;
    }
    if (last) co_return;
  }
}

asio::awaitable<void> accept_loop(std::shared_ptr<State> state) {
  for (;;) {
    auto [error, socket] = co_await state->acceptor.async_accept(kNoThrow);
    if (state->closed || error == asio::error::operation_aborted) co_return;
    if (error) {
      // Out of descriptors or memory: say so, pause, and go on accepting.
      log_error("control socket: accept on {} failed: {}", state->path, error.message());
      asio::steady_timer pause(state->acceptor.get_executor(), std::chrono::milliseconds(100));
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    asio::co_spawn(state->acceptor.get_executor(), serve(state, std::move(socket)),
                   log_failure("control connection"));
  }
}

}  // namespace

ControlServer::ControlServer(asio::io_context& context, std::string path, std::string control_group,
                             ControlHandler& handler, ControlServerLimits limits)
    : context_(context),
      path_(std::move(path)),
      control_group_(std::move(control_group)),
      state_(std::make_shared<State>(context, handler, limits)) {
  state_->path = path_;
  state_->group_name = control_group_;
}

ControlServer::~ControlServer() {
  close();
}

std::size_t ControlServer::connection_count() const {
  return state_->connections.size();
}

bool ControlServer::open(std::string& error) {
  if (state_->closed || state_->acceptor.is_open()) {
    error = "the control server was opened already";
    return false;
  }
  if (path_.empty()) {
    error = "[manager] control_socket is empty";
    return false;
  }
  if (path_.size() >= sizeof(sockaddr_un::sun_path)) {
    error = fmt::format("control socket path {} is longer than {} bytes; choose a shorter one",
                        path_, sizeof(sockaddr_un::sun_path) - 1);
    return false;
  }
  if (!control_group_.empty()) {
    state_->group = find_group(control_group_, kControlSocketWording.group_setting, error);
    if (!state_->group) return false;
  }
  const auto slash = path_.rfind('/');
  if (slash != std::string::npos && slash > 0 && !make_folders(path_.substr(0, slash), error))
    return false;
  const auto cleared = clear_stale_unix_socket(path_, kControlSocketWording, error);
  if (!cleared) return false;
  if (*cleared == StaleSocket::removed)
    log_info("control socket: removed the stale {} left by an earlier manager", path_);

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = "cannot create the control socket: " + errno_text();
    return false;
  }
  if (const int bind_error = bind_unix_socket_file(fd, path_); bind_error != 0) {
    error = "cannot create the control socket " + path_ + ": " + errno_text(bind_error);
    ::close(fd);
    return false;
  }
  auto fail = [&](std::string message) {
    error = std::move(message);
    ::close(fd);
    ::unlink(path_.c_str());
    return false;
  };
  // Born 0600; 0660 for control_group's members.
  const UnixSocketAccess access{state_->group ? 0660u : 0600u, control_group_};
  const auto file = apply_unix_socket_access(path_, access, kControlSocketWording, error);
  if (!file) return fail(std::move(error));
  if (::listen(fd, kBacklog) != 0) return fail("cannot listen on " + path_ + ": " + errno_text());
  asio::error_code assign_error;
  state_->acceptor.assign(asio::local::stream_protocol(), fd, assign_error);
  if (assign_error) return fail("cannot accept on " + path_ + ": " + assign_error.message());

  socket_file_ = file;
  asio::co_spawn(context_, accept_loop(state_), log_failure("control socket accept loop"));
  log_info("control socket: listening on {} (mode {}{})", path_,
           state_->group ? "0660, group " : "0600", control_group_);
  return true;
}

bool ControlServer::adopt(int fd, std::string& error) {
  if (!control_group_.empty()) {
    state_->group = find_group(control_group_, kControlSocketWording.group_setting, error);
    if (!state_->group) return false;
  }
  asio::error_code assign_error;
  state_->acceptor.assign(asio::local::stream_protocol(), fd, assign_error);
  if (assign_error) {
    error = "cannot accept on the handed control socket " + path_ + ": " + assign_error.message();
    return false;
  }
  if (struct stat info{}; ::lstat(path_.c_str(), &info) == 0)
    socket_file_ = UnixSocketFileId{info.st_dev, info.st_ino};
  asio::co_spawn(context_, accept_loop(state_), log_failure("control socket accept loop"));
  log_info("control socket: serving on {} (taken over)", path_);
  return true;
}

int ControlServer::listening_fd() const {
  return state_->acceptor.is_open() ? state_->acceptor.native_handle() : -1;
}

void ControlServer::close() {
  if (state_->closed) return;
  state_->closed = true;
  asio::error_code ignored;
  state_->acceptor.close(ignored);
  // Each connection's coroutine ends on its own; it leaves the registry then.
  for (const auto& [id, connection] : state_->connections) {
    state_->end_log_stream(*connection);
    connection->close();
  }
  if (socket_file_) {
    // Only our own file: a newer manager may have replaced a socket we lost.
    remove_unix_socket_file(path_, *socket_file_);
    socket_file_.reset();
  }
}

}  // namespace scgi::manager
