#include "scgi/manager/scgictl.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "scgi/control_protocol.hpp"
#include "scgi/manager/control_client.hpp"
#include "scgi/manager/status_table.hpp"
#include "scgi/units.hpp"

namespace scgi::manager {
namespace {

using namespace std::chrono_literals;
using control::Command;

constexpr auto kConnectTimeout = 5s;
constexpr auto kSendTimeout = 10s;
// status and logs answer at once; the commands that change things take as
// long as the change does (a rolling restart waits for every worker).
constexpr auto kQuickReplyTimeout = 10s;
// A reply already sent when the request could not be (the manager refused us).
constexpr auto kEarlyReplyTimeout = 1s;

struct Arguments {
  std::string socket = default_control_socket();
  bool json = false;
  std::string timeout;  // "" = the command's default
  std::string pool;     // status [POOL], scale POOL
  std::string target;   // POOL[:WORKER]
  std::uint32_t workers = 0;
  bool wait = false;
  bool follow = false;
  std::size_t lines = control::kDefaultLogLines;
};

struct Usage {
  std::string error;
};

// The request the command line asks for, or a usage error.
std::variant<control::Request, Usage> build_request(Command command, const Arguments& arguments) {
  control::Request request;
  request.command = command;
  switch (command) {
    case Command::status:
      request.pool = arguments.pool;
      break;
    case Command::scale:
      if (arguments.pool.find(':') != std::string::npos)
        return Usage{fmt::format("scale takes a pool, not a worker: scgictl scale {} {}",
                                 arguments.pool.substr(0, arguments.pool.find(':')),
                                 arguments.workers)};
      request.pool = arguments.pool;
      request.workers = arguments.workers;
      break;
    case Command::reload:
      break;
    case Command::start:
    case Command::stop:
    case Command::restart:
    case Command::drain:
    case Command::undrain:
    case Command::logs: {
      auto target = control::parse_target(arguments.target);
      if (!target) return Usage{target.error()};
      const bool needs_worker = command == Command::drain || command == Command::undrain;
      if (needs_worker && !target.value().worker)
        return Usage{fmt::format("{} needs POOL:WORKER, e.g. {}:0", control::command_name(command),
                                 target.value().pool)};
      request.pool = target.value().pool;
      request.worker = target.value().worker;
      request.wait = arguments.wait;
      request.follow = arguments.follow;
      request.lines = arguments.lines;
      break;
    }
  }
  return request;
}

// Prints what the reply says; returns the exit code.
int print_reply(const control::Request& request, const control::Reply& reply, std::ostream& out,
                std::ostream& err) {
  if (!reply.ok) {
    err << "scgictl: " << reply.error << "\n";
    return kExitFailed;
  }
  if (request.command == Command::status) {
    std::vector<control::PoolStatus> pools;
    try {
      reply.body.at("pools").get_to(pools);
    } catch (const nlohmann::json::exception& error) {
      err << "scgictl: the manager's status reply is not what this scgictl expects ("
          << error.what() << "); use --json to see it\n";
      return kExitUnreachable;
    }
    out << render_status(pools);
    return kExitOk;
  }
  if (request.command == Command::logs) {
    const auto lines = reply.body.find("lines");
    if (lines != reply.body.end() && lines->is_array())
      for (const auto& line : *lines)
        if (line.is_string()) out << line.get_ref<const std::string&>() << "\n";
    out << std::flush;
    return kExitOk;
  }
  const auto message = reply.body.find("message");
  if (message != reply.body.end() && message->is_string() && !message->get<std::string>().empty())
    out << message->get<std::string>() << "\n";
  return kExitOk;
}

int run(const control::Request& request, const Arguments& arguments,
        std::optional<std::chrono::milliseconds> reply_timeout, std::ostream& out,
        std::ostream& err) {
  auto client = ControlClient::connect(arguments.socket, kConnectTimeout);
  if (!client) {
    err << "scgictl: " << client.error() << "\n";
    return kExitUnreachable;
  }
  ControlClient connection = std::move(client).value();
  std::optional<ControlClient::ReadOutcome> early;
  if (auto sent = connection.send(control::request_line(request), kSendTimeout); !sent) {
    // The manager may have refused the connection (a permission check) and
    // closed it before the request went out: its reason is waiting to be read.
    early = connection.read_line(kEarlyReplyTimeout);
    if (early->status != ControlClient::ReadStatus::line) {
      err << "scgictl: " << sent.error() << "\n";
      return kExitUnreachable;
    }
  }

  bool first = true;
  for (;;) {
    // After the first reply of `logs -f`, lines come whenever workers write them.
    auto read = early ? *std::exchange(early, std::nullopt)
                      : connection.read_line(first ? reply_timeout : std::nullopt);
    switch (read.status) {
      case ControlClient::ReadStatus::line:
        break;
      case ControlClient::ReadStatus::closed:
        err << "scgictl: the manager on " << arguments.socket
            << (first ? " closed the connection without a reply (is --socket the manager's "
                        "control socket? see the manager's log)\n"
                      : " closed the connection (it stopped or restarted)\n");
        return kExitUnreachable;
      case ControlClient::ReadStatus::timed_out:
        err << "scgictl: no reply from the manager on " << arguments.socket << " within "
            << format_duration(*reply_timeout)
            << (request.command == Command::status || request.command == Command::logs
                    ? "; it may be overloaded or stuck\n"
                    : "; the command may still be in progress (check with scgictl status, or "
                      "give a longer --timeout)\n");
        return kExitUnreachable;
      case ControlClient::ReadStatus::failed:
        err << "scgictl: " << read.error << "\n";
        return kExitUnreachable;
    }
    auto reply = control::parse_reply(read.line);
    if (!reply) {
      err << "scgictl: " << reply.error() << " (is --socket the manager's control socket?)\n";
      return kExitUnreachable;
    }
    if (arguments.json) out << read.line << "\n" << std::flush;
    if (reply.value().is_log) {
      if (!arguments.json) out << reply.value().log << "\n" << std::flush;
      first = false;
      continue;
    }
    const bool streaming = request.command == Command::logs && request.follow;
    if (!first && !reply.value().ok) {  // the manager ended the stream
      err << "scgictl: " << reply.value().error << "\n";
      return kExitFailed;
    }
    const int code = arguments.json ? (reply.value().ok ? kExitOk : kExitFailed)
                                    : print_reply(request, reply.value(), out, err);
    if (arguments.json && !reply.value().ok) err << "scgictl: " << reply.value().error << "\n";
    if (code != kExitOk || !streaming) return code;
    first = false;
  }
}

}  // namespace

int scgictl_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CLI::App app{"Controls a running scgi-manager through its control socket.", "scgictl"};
  app.footer(
      "Exit status: 0 done, 1 the command failed, 2 usage error, 3 the manager cannot be "
      "reached.\nThe protocol: docs/control-protocol.md.");
  Arguments arguments;
  app.add_option(
      "--socket", arguments.socket,
      fmt::format("The manager's control socket (default: $SCGI_CONTROL_SOCKET, else {})",
                  kDefaultControlSocket));
  app.add_flag("--json", arguments.json, "Print the manager's replies as they are (JSON lines)");
  app.add_option("--timeout", arguments.timeout,
                 "How long to wait for the reply, e.g. 30s or 2m; 0 = no limit (default: 10s for "
                 "status and logs, no limit for commands that change things)");
  app.require_subcommand(1);

  struct Sub {
    Command command;
    CLI::App* app;
  };
  std::vector<Sub> subs;
  auto add = [&](Command command, const std::string& description) {
    CLI::App* sub = app.add_subcommand(std::string(control::command_name(command)), description);
    sub->fallthrough();  // --json and friends after the command too
    subs.push_back({command, sub});
    return sub;
  };
  add(Command::status, "Show pools and workers")
      ->add_option("POOL", arguments.pool, "Only this pool");
  add(Command::start, "Start a pool's workers, or one worker (stopped by hand)")
      ->add_option("TARGET", arguments.target, "POOL or POOL:WORKER")
      ->required();
  add(Command::stop, "Stop a pool's workers, or one worker; they stay stopped until start")
      ->add_option("TARGET", arguments.target, "POOL or POOL:WORKER")
      ->required();
  add(Command::restart, "Restart a worker, or a whole pool one worker at a time")
      ->add_option("TARGET", arguments.target, "POOL or POOL:WORKER")
      ->required();
  CLI::App* scale = add(Command::scale, "Run N workers in a pool");
  scale->add_option("POOL", arguments.pool, "The pool")->required();
  scale->add_option("N", arguments.workers, "How many workers")->required();
  add(Command::reload, "Re-read the configuration file (like SIGHUP)");
  CLI::App* drain = add(Command::drain, "Send a worker no new requests");
  drain->add_flag("--wait", arguments.wait, "Return once nothing is in flight on it");
  drain->add_option("TARGET", arguments.target, "POOL:WORKER")->required();
  add(Command::undrain, "Route requests to a drained worker again")
      ->add_option("TARGET", arguments.target, "POOL:WORKER")
      ->required();
  CLI::App* logs = add(Command::logs, "Show the last lines the workers wrote");
  logs->add_option("TARGET", arguments.target, "POOL or POOL:WORKER")->required();
  logs->add_flag("-f,--follow", arguments.follow, "Keep printing new lines until interrupted");
  logs->add_option("-n,--lines", arguments.lines,
                   fmt::format("How many recent lines (default {}, at most {})",
                               control::kDefaultLogLines, control::kMaxLogLines))
      ->check(CLI::Range(std::size_t{0}, control::kMaxLogLines));
  CLI::App* top = app.add_subcommand("top", "Live view of the pools (not implemented yet)");
  top->fallthrough();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int code = app.exit(error, out, err);
    return code == 0 ? kExitOk : kExitUsage;
  }

  if (top->parsed()) {
    err << "scgictl: top is not implemented yet; use scgictl status (e.g. watch -n1 scgictl "
           "status)\n";
    return kExitFailed;
  }
  const auto chosen =
      std::find_if(subs.begin(), subs.end(), [](const Sub& sub) { return sub.app->parsed(); });
  if (chosen == subs.end()) return kExitUsage;  // require_subcommand(1) makes this unreachable

  std::optional<std::chrono::milliseconds> reply_timeout;
  if (arguments.timeout.empty()) {
    if (chosen->command == Command::status || chosen->command == Command::logs)
      reply_timeout = kQuickReplyTimeout;
  } else {
    auto parsed = parse_duration(arguments.timeout);
    if (!parsed) {
      err << "scgictl: --timeout " << arguments.timeout << ": " << parsed.error() << "\n";
      return kExitUsage;
    }
    if (parsed.value().count() > 0) reply_timeout = parsed.value();
  }

  auto request = build_request(chosen->command, arguments);
  if (const auto* usage = std::get_if<Usage>(&request)) {
    err << "scgictl: " << usage->error << "\n";
    return kExitUsage;
  }
  return run(std::get<control::Request>(request), arguments, reply_timeout, out, err);
}

}  // namespace scgi::manager
