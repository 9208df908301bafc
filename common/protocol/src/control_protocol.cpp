#include "scgi/control_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>

#include <fmt/format.h>

namespace scgi::control {
namespace {

using nlohmann::json;

// Writes invalid UTF-8 as U+FFFD instead of throwing: worker output is not ours.
std::string dump_line(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

constexpr std::array<std::pair<Command, std::string_view>, 11> kCommandNames{{
    {Command::status, "status"},
    {Command::start, "start"},
    {Command::stop, "stop"},
    {Command::restart, "restart"},
    {Command::scale, "scale"},
    {Command::reload, "reload"},
    {Command::drain, "drain"},
    {Command::undrain, "undrain"},
    {Command::logs, "logs"},
    {Command::slowlog, "slowlog"},
    {Command::upgrade, "upgrade"},
}};

std::string command_list() {
  std::string out;
  for (const auto& [command, name] : kCommandNames)
    out += (out.empty() ? "" : ", ") + std::string(name);
  return out;
}

// Which arguments each command takes, and which of them it requires.
struct Argument {
  std::string_view name;
  bool required;
};

std::vector<Argument> arguments_of(Command command) {
  switch (command) {
    case Command::status:
    case Command::slowlog:
      return {{"pool", false}};
    case Command::start:
    case Command::stop:
    case Command::restart:
      return {{"pool", true}, {"worker", false}};
    case Command::scale:
      return {{"pool", true}, {"workers", true}};
    case Command::reload:
    case Command::upgrade:
      return {};
    case Command::drain:
      return {{"pool", true}, {"worker", true}, {"wait", false}};
    case Command::undrain:
      return {{"pool", true}, {"worker", true}};
    case Command::logs:
      return {{"pool", true}, {"worker", false}, {"lines", false}, {"follow", false}};
  }
  return {};
}

std::string argument_list(const std::vector<Argument>& arguments) {
  if (arguments.empty()) return "it takes none";
  std::string out = "it takes ";
  for (std::size_t i = 0; i < arguments.size(); ++i)
    out += (i == 0 ? "" : ", ") + std::string(arguments[i].name);
  return out;
}

// A whole number in [0, max]: nlohmann keeps non-negative integers as unsigned.
std::optional<std::uint64_t> whole_number(const json& value, std::uint64_t max) {
  if (!value.is_number_unsigned()) return std::nullopt;
  const auto number = value.get<std::uint64_t>();
  if (number > max) return std::nullopt;
  return number;
}

// nlohmann's messages start with "[json.exception.parse_error.101] ": not for users.
std::string without_exception_tag(std::string message) {
  if (!message.empty() && message.front() == '[') {
    const auto end = message.find("] ");
    if (end != std::string::npos) message.erase(0, end + 2);
  }
  return message;
}

// A name from the request, echoed in an error: its start is enough to see
// which one was meant, and a 64 KiB key is not worth sending back.
std::string excerpt(std::string_view text) {
  constexpr std::size_t kMaxEchoBytes = 64;
  if (text.size() <= kMaxEchoBytes) return std::string(text);
  return std::string(text.substr(0, kMaxEchoBytes)) + "…";
}

// The whole line as JSON. Besides syntax errors, nlohmann throws out_of_range
// for a number it cannot hold ({"id":1e400}): every json::exception is the
// client's mistake here, never a reason to drop the connection.
Result<json> parse_json(std::string_view line, std::string_view prefix) {
  try {
    return Result<json>::ok(json::parse(line));
  } catch (const json::exception& error) {
    return Result<json>::fail(std::string(prefix) + without_exception_tag(error.what()));
  }
}

}  // namespace

void to_json(json& out, const WorkerStatus& worker) {
  out = json{{"index", worker.index},
             {"pid", worker.pid},
             {"state", worker.state},
             {"wanted", worker.wanted},
             {"drained", worker.drained},
             {"address", worker.address},
             {"uptime_seconds", worker.uptime_seconds},
             {"requests", worker.requests},
             {"in_flight", worker.in_flight},
             {"rss_bytes", worker.rss_bytes},
             {"cpu_seconds", worker.cpu_seconds},
             {"restarts", worker.restarts},
             {"last_exit", worker.last_exit}};
}

void from_json(const json& in, WorkerStatus& worker) {
  WorkerStatus read;
  in.at("index").get_to(read.index);
  if (in.contains("pid")) in.at("pid").get_to(read.pid);
  if (in.contains("state")) in.at("state").get_to(read.state);
  if (in.contains("wanted")) in.at("wanted").get_to(read.wanted);
  if (in.contains("drained")) in.at("drained").get_to(read.drained);
  if (in.contains("address")) in.at("address").get_to(read.address);
  if (in.contains("uptime_seconds")) in.at("uptime_seconds").get_to(read.uptime_seconds);
  if (in.contains("requests")) in.at("requests").get_to(read.requests);
  if (in.contains("in_flight")) in.at("in_flight").get_to(read.in_flight);
  if (in.contains("rss_bytes")) in.at("rss_bytes").get_to(read.rss_bytes);
  if (in.contains("cpu_seconds")) in.at("cpu_seconds").get_to(read.cpu_seconds);
  if (in.contains("restarts")) in.at("restarts").get_to(read.restarts);
  if (in.contains("last_exit")) in.at("last_exit").get_to(read.last_exit);
  worker = std::move(read);
}

void to_json(json& out, const PoolStatus& pool) {
  out = json{{"name", pool.name},
             {"listen", pool.listen},
             {"failing", pool.failing},
             {"min_workers", pool.min_workers},
             {"max_workers", pool.max_workers},
             {"target_workers", pool.target_workers},
             {"queue_length", pool.queue_length},
             {"state", pool.state},
             {"in_flight", pool.in_flight},
             {"requests", pool.requests},
             {"request_rate", pool.request_rate},
             {"latency_p50_seconds", pool.latency_p50_seconds},
             {"latency_p99_seconds", pool.latency_p99_seconds},
             {"restarts", pool.restarts},
             {"slow_requests", pool.slow_requests},
             {"workers", pool.workers}};
}

void from_json(const json& in, PoolStatus& pool) {
  PoolStatus read;
  in.at("name").get_to(read.name);
  if (in.contains("listen")) in.at("listen").get_to(read.listen);
  if (in.contains("failing")) in.at("failing").get_to(read.failing);
  if (in.contains("min_workers")) in.at("min_workers").get_to(read.min_workers);
  if (in.contains("max_workers")) in.at("max_workers").get_to(read.max_workers);
  if (in.contains("target_workers")) in.at("target_workers").get_to(read.target_workers);
  if (in.contains("queue_length")) in.at("queue_length").get_to(read.queue_length);
  if (in.contains("state")) in.at("state").get_to(read.state);
  if (in.contains("in_flight")) in.at("in_flight").get_to(read.in_flight);
  if (in.contains("requests")) in.at("requests").get_to(read.requests);
  if (in.contains("request_rate")) in.at("request_rate").get_to(read.request_rate);
  if (in.contains("latency_p50_seconds"))
    in.at("latency_p50_seconds").get_to(read.latency_p50_seconds);
  if (in.contains("latency_p99_seconds"))
    in.at("latency_p99_seconds").get_to(read.latency_p99_seconds);
  if (in.contains("restarts")) in.at("restarts").get_to(read.restarts);
  if (in.contains("slow_requests")) in.at("slow_requests").get_to(read.slow_requests);
  if (in.contains("workers")) in.at("workers").get_to(read.workers);
  pool = std::move(read);
}

Result<WorkerTarget> parse_target(std::string_view text) {
  using R = Result<WorkerTarget>;
  const auto colon = text.find(':');
  const std::string_view pool = text.substr(0, colon);
  if (pool.empty())
    return R::fail(
        fmt::format("\"{}\" names no pool: write POOL or POOL:WORKER, e.g. app or app:0", text));
  if (colon == std::string_view::npos) return R::ok({std::string(pool), std::nullopt});
  const std::string_view index = text.substr(colon + 1);
  std::uint32_t worker = 0;
  const auto [end, error] = std::from_chars(index.data(), index.data() + index.size(), worker);
  if (index.empty() || error != std::errc() || end != index.data() + index.size())
    return R::fail(fmt::format(
        "\"{}\": the worker after ':' must be a worker index (0, 1, ...), e.g. {}:0", text, pool));
  return R::ok({std::string(pool), worker});
}

std::string to_string(const WorkerTarget& target) {
  if (!target.worker) return target.pool;
  return target.pool + ":" + std::to_string(*target.worker);
}

std::string_view command_name(Command command) {
  for (const auto& [known, name] : kCommandNames)
    if (known == command) return name;
  return "?";
}

std::optional<Command> command_from_name(std::string_view name) {
  for (const auto& [command, known] : kCommandNames)
    if (known == name) return command;
  return std::nullopt;
}

namespace {

// parse_request once the line is JSON.
Result<Request> request_from(const json& object, json& id) {
  using R = Result<Request>;
  if (!object.is_object()) {
    const std::string_view type = object.type_name();
    return R::fail(
        fmt::format("a request must be a JSON object such as {{\"command\":\"status\"}}, not {}{}",
                    type == "array"  ? "an "
                    : type == "null" ? ""
                                     : "a ",
                    type));
  }

  Request request;
  if (const auto found = object.find("id"); found != object.end()) {
    if (!found->is_null() && !found->is_string() && !found->is_number())
      return R::fail("\"id\" must be a string or a number");
    id = *found;
    request.id = *found;
  }
  const auto command_field = object.find("command");
  if (command_field == object.end())
    return R::fail("missing \"command\": one of " + command_list());
  if (!command_field->is_string()) return R::fail("\"command\" must be a string");
  const auto command = command_from_name(command_field->get_ref<const std::string&>());
  if (!command)
    return R::fail(fmt::format("unknown command \"{}\": one of {}",
                               excerpt(command_field->get_ref<const std::string&>()),
                               command_list()));
  request.command = *command;
  const std::string_view name = command_name(*command);

  const auto arguments = arguments_of(*command);
  for (const auto& item : object.items()) {
    const std::string& key = item.key();  // not a structured binding: clang 14 cannot capture one
    if (key == "command" || key == "id") continue;
    const bool known = std::any_of(arguments.begin(), arguments.end(),
                                   [&key](const Argument& a) { return a.name == key; });
    if (!known)
      return R::fail(fmt::format("\"{}\" is not an argument of {} ({})", excerpt(key), name,
                                 argument_list(arguments)));
  }
  for (const Argument& argument : arguments) {
    const auto found = object.find(argument.name);
    if (found == object.end()) {
      if (argument.required)
        return R::fail(fmt::format("{} needs \"{}\" ({})", name, argument.name,
                                   argument.name == "worker" ? "a worker index: 0, 1, ..."
                                   : argument.name == "workers"
                                       ? "how many workers the pool should run"
                                       : "the pool's name"));
      continue;
    }
    const json& value = *found;
    if (argument.name == "pool") {
      if (!value.is_string()) return R::fail("\"pool\" must be a string, the pool's name");
      request.pool = value.get<std::string>();
      if (request.pool.empty() && *command != Command::status)
        return R::fail(fmt::format("{} needs a pool: \"pool\" is empty", name));
    } else if (argument.name == "worker") {
      const auto number = whole_number(value, std::numeric_limits<std::uint32_t>::max());
      if (!number) return R::fail("\"worker\" must be a worker index: a whole number from 0");
      request.worker = static_cast<std::uint32_t>(*number);
    } else if (argument.name == "workers") {
      const auto number = whole_number(value, std::numeric_limits<std::uint32_t>::max());
      if (!number) return R::fail("\"workers\" must be a whole number from 0");
      request.workers = static_cast<std::uint32_t>(*number);
    } else if (argument.name == "lines") {
      const auto number = whole_number(value, kMaxLogLines);
      if (!number)
        return R::fail(fmt::format("\"lines\" must be a whole number from 0 to {}", kMaxLogLines));
      request.lines = static_cast<std::size_t>(*number);
    } else if (argument.name == "wait" || argument.name == "follow") {
      if (!value.is_boolean())
        return R::fail(fmt::format("\"{}\" must be true or false", argument.name));
      (argument.name == "wait" ? request.wait : request.follow) = value.get<bool>();
    }
  }
  return R::ok(std::move(request));
}

}  // namespace

Result<Request> parse_request(std::string_view line, json& id) {
  id = nullptr;
  auto object = parse_json(line, "malformed JSON: ");
  if (!object) return Result<Request>::fail(object.error());
  try {
    return request_from(object.value(), id);
  } catch (const json::exception& error) {
    // Every type is checked before it is read; this is the backstop that keeps
    // a mistake there an error reply instead of a dropped connection.
    return Result<Request>::fail("malformed request: " + without_exception_tag(error.what()));
  }
}

std::string request_line(const Request& request) {
  json object{{"command", command_name(request.command)}};
  if (!request.id.is_null()) object["id"] = request.id;
  for (const Argument& argument : arguments_of(request.command)) {
    if (argument.name == "pool") {
      if (!request.pool.empty()) object["pool"] = request.pool;
    } else if (argument.name == "worker") {
      if (request.worker) object["worker"] = *request.worker;
    } else if (argument.name == "workers") {
      object["workers"] = request.workers;
    } else if (argument.name == "lines") {
      if (request.lines != kDefaultLogLines) object["lines"] = request.lines;
    } else if (argument.name == "wait") {
      if (request.wait) object["wait"] = true;
    } else if (argument.name == "follow") {
      if (request.follow) object["follow"] = true;
    }
  }
  return dump_line(object);
}

std::string ok_reply(const json& id, json fields) {
  json reply{{"ok", true}};
  if (!id.is_null()) reply["id"] = id;
  if (fields.is_object())
    for (auto& [key, value] : fields.items())
      reply[key] = std::move(value);
  return dump_line(reply);
}

std::string error_reply(const json& id, std::string_view message) {
  json reply{{"ok", false}};
  if (!id.is_null()) reply["id"] = id;
  reply["error"] = message;
  return dump_line(reply);
}

std::string log_line(std::string_view line) {
  return dump_line(json{{"log", line}});
}

Result<Reply> parse_reply(std::string_view line) {
  using R = Result<Reply>;
  Reply reply;
  auto body = parse_json(line, "the manager sent malformed JSON: ");
  if (!body) return R::fail(body.error());
  reply.body = std::move(body).value();
  if (!reply.body.is_object()) return R::fail("the manager sent a reply that is not an object");
  if (const auto log = reply.body.find("log"); log != reply.body.end() && log->is_string()) {
    reply.is_log = true;
    reply.ok = true;
    reply.log = log->get<std::string>();
    return R::ok(std::move(reply));
  }
  const auto ok = reply.body.find("ok");
  if (ok == reply.body.end() || !ok->is_boolean())
    return R::fail("the manager sent a reply without \"ok\"");
  reply.ok = ok->get<bool>();
  if (!reply.ok) {
    const auto error = reply.body.find("error");
    reply.error = error != reply.body.end() && error->is_string() ? error->get<std::string>()
                                                                  : "(the reply gave no reason)";
  }
  return R::ok(std::move(reply));
}

}  // namespace scgi::control
