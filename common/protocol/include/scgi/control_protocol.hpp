// The control protocol between scgictl and scgi-manager (docs/control-protocol.md):
// one JSON object per line each way over the control socket. This header holds
// the messages both sides share: requests, replies and the status of pools and
// workers, with their JSON forms.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scgi/result.hpp"

namespace scgi::control {

// A request line is at most this long (without its newline); a longer one gets
// an error reply and the connection is closed.
inline constexpr std::size_t kMaxRequestBytes = 64 * 1024;
// `logs` returns this many recent lines unless the request says otherwise, and
// never more than the maximum.
inline constexpr std::size_t kDefaultLogLines = 10;
inline constexpr std::size_t kMaxLogLines = 100'000;

struct WorkerStatus {
  std::uint32_t index = 0;  // SCGI_WORKER
  long pid = 0;             // 0 while no process runs
  std::string state;        // starting, ready, draining, stopping, backoff, stopped
  std::string wanted;       // up, down
  bool drained = false;     // drained by hand (scgictl drain): gets no new request
  std::string address{};    // where the balancer connects
  double uptime_seconds = 0;
  std::uint64_t requests = 0;  // served by this process (counted by the balancer)
  std::uint32_t in_flight = 0;
  std::uint64_t rss_bytes = 0;
  double cpu_seconds = 0;
  std::uint32_t restarts = 0;  // of this slot since the manager started
  std::string last_exit{};     // "exit status 1", "signal 9 (Killed)", "" if none yet

  bool operator==(const WorkerStatus&) const = default;
};

struct PoolStatus {
  std::string name;
  std::string listen{};  // "" when the pool is supervised only
  bool failing = false;
  std::uint32_t min_workers = 0;
  std::uint32_t max_workers = 0;
  std::uint32_t target_workers = 0;  // what the scaler wants now
  std::size_t queue_length = 0;
  // running (every wanted worker ready), degraded (fewer ready), failing,
  // stopped (no worker wanted).
  std::string state{};
  std::uint32_t in_flight = 0;     // requests on its workers now
  std::uint64_t requests = 0;      // answered since the manager started
  double request_rate = 0;         // per second, over the last few seconds
  double latency_p50_seconds = 0;  // of the requests of the last few seconds
  double latency_p99_seconds = 0;
  std::map<std::string, std::uint64_t> restarts{};  // by reason: exit, signal, recycle, health
  std::uint64_t slow_requests = 0;  // past slow_request_threshold since the manager started
  std::vector<WorkerStatus> workers{};

  bool operator==(const PoolStatus&) const = default;
};

// Every field is written; reading requires "index"/"name" and takes defaults
// for the rest, so that an older scgictl reads a newer manager's status.
// from_json throws nlohmann::json::exception on a wrong type.
void to_json(nlohmann::json& out, const WorkerStatus& worker);
void from_json(const nlohmann::json& in, WorkerStatus& worker);
void to_json(nlohmann::json& out, const PoolStatus& pool);
void from_json(const nlohmann::json& in, PoolStatus& pool);

// POOL or POOL:WORKER, as scgictl writes it.
struct WorkerTarget {
  std::string pool;
  std::optional<std::uint32_t> worker;

  bool operator==(const WorkerTarget&) const = default;
};

// "app" or "app:3"; the error says what a target looks like.
Result<WorkerTarget> parse_target(std::string_view text);
std::string to_string(const WorkerTarget& target);

enum class Command {
  status,
  start,
  stop,
  restart,
  scale,
  reload,
  drain,
  undrain,
  logs,
  upgrade,
  slowlog
};

std::string_view command_name(Command command);
std::optional<Command> command_from_name(std::string_view name);

// One request with its arguments checked for the command: only the fields of
// that command are meaningful (docs/control-protocol.md lists them).
struct Request {
  Command command = Command::status;
  nlohmann::json id{};  // echoed back in the reply; null when absent
  // status, slowlog: the pool to show ("" = every pool); logs, start, stop, restart,
  // drain, undrain, scale: the pool acted on.
  std::string pool{};
  std::optional<std::uint32_t> worker{};  // required by drain and undrain
  std::uint32_t workers = 0;              // scale
  bool wait = false;                      // drain
  std::size_t lines = kDefaultLogLines;   // logs
  bool follow = false;                    // logs

  WorkerTarget target() const { return {pool, worker}; }
};

// Parses one request line (without its newline). On failure the message names
// the problem ("malformed JSON: ...", "unknown command \"x\"", "\"worker\" must
// be ..."); `id` receives the request's id whenever the line was an object with
// a valid one, so that even an error reply carries it.
Result<Request> parse_request(std::string_view line, nlohmann::json& id);

// The request as one line of JSON with its newline (what scgictl sends). Only
// the fields of its command are written, defaults left out.
std::string request_line(const Request& request);

// Replies, each one line of JSON ending in "\n". Strings that are not valid
// UTF-8 (a worker may print anything) are written with U+FFFD in place of the
// bad bytes rather than failing.
//   {"ok":true,"id":ID,...fields}     fields: an object, e.g. {"message":"..."}
//   {"ok":false,"id":ID,"error":"..."}
// "id" is left out when null.
std::string ok_reply(const nlohmann::json& id, nlohmann::json fields = nlohmann::json::object());
std::string error_reply(const nlohmann::json& id, std::string_view message);
// One streamed log line of `logs` with follow: {"log":"..."}
std::string log_line(std::string_view line);

// A line received by the client: a reply, or a streamed log line.
struct Reply {
  bool ok = false;
  bool is_log = false;  // {"log":"..."}: `log` holds the text
  std::string error{};  // when !ok and !is_log
  std::string log{};
  nlohmann::json body{};  // the whole object
};

// Fails when the line is not JSON, not an object, or neither a reply nor a log line.
Result<Reply> parse_reply(std::string_view line);

}  // namespace scgi::control
