#include "scgictl.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include <fmt/format.h>

#include "control_client.hpp"
#include "interrupt_signals.hpp"
#include "scgi/config.hpp"
#include "scgi/control_protocol.hpp"
#include "scgi/units.hpp"
#include "slowlog_view.hpp"
#include "status_table.hpp"
#include "top_view.hpp"

#ifndef SCGI_VERSION
#define SCGI_VERSION "unknown"
#endif

namespace scgi::ctl {
namespace {

using namespace std::chrono_literals;
using control::Command;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr auto kConnectTimeout = 5s;
constexpr auto kSendTimeout = 10s;
// status and logs answer at once; the commands that change things take as
// long as the change does (a rolling restart waits for every worker).
constexpr auto kQuickReplyTimeout = 10s;
// A reply already sent when the request could not be (the manager refused us).
constexpr auto kEarlyReplyTimeout = 1s;
// scgictl's requests carry this id: an error reply without it is the
// manager refusing the connection (permission, too many), not the command failing.
constexpr int kRequestId = 1;

constexpr std::string_view kGlobalUsage =
    "scgictl [--socket PATH | --config FILE] [--json] [--timeout DURATION] COMMAND";

// Every command, as `help` lists it.
struct CommandInfo {
  std::string_view name;
  std::string_view usage;
  std::string_view summary;
};
constexpr std::array<CommandInfo, 14> kCommands{{
    {"status", "status [POOL]", "Show pools and their workers"},
    {"start", "start POOL[:WORKER]", "Start a pool's workers, or one worker stopped by hand"},
    {"stop", "stop POOL[:WORKER]",
     "Stop a pool's workers, or one worker; they stay stopped until started"},
    {"restart", "restart POOL[:WORKER]",
     "Restart a worker, or a whole pool one worker at a time; prints each step"},
    {"scale", "scale POOL N", "Run N workers in the pool (until the next reload)"},
    {"reload", "reload", "Re-read the configuration file (like SIGHUP); reports its errors"},
    {"upgrade", "upgrade",
     "Replace the manager's program in place with its file on disk (like SIGUSR2), keeping its "
     "PID, workers, sockets and counters; reports the outcome"},
    {"drain", "drain [--wait] POOL:WORKER",
     "Send a worker no new requests (--wait: until nothing is in flight on it)"},
    {"undrain", "undrain POOL:WORKER", "Route requests to a drained worker again"},
    {"logs", "logs POOL[:WORKER] [-f] [-n LINES]",
     "Show the last lines the workers wrote; -f keeps printing new ones until Ctrl-C"},
    {"slowlog", "slowlog [POOL]",
     "Show the last requests that ran past slow_request_threshold: what their worker was doing, "
     "what it wrote after the signal, how they ended"},
    {"top", "top", "Live view of pools and workers, refreshed every second; q quits"},
    {"version", "version", "Print scgictl's version"},
    {"help", "help [COMMAND]", "Help for every command, or for one"},
}};

const CommandInfo* find_command(std::string_view name) {
  const auto found = std::find_if(kCommands.begin(), kCommands.end(),
                                  [name](const CommandInfo& info) { return info.name == name; });
  return found == kCommands.end() ? nullptr : &*found;
}

std::string command_names() {
  std::string names;
  for (const CommandInfo& info : kCommands)
    names += (names.empty() ? "" : ", ") + std::string(info.name);
  return names;
}

// One JSON object on one line, as --json prints it.
std::string json_text(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

struct Arguments {
  std::string socket = default_control_socket();
  std::string config;  // --config: the socket is the one this file names
  bool json = false;
  std::string timeout;  // "" = the command's default
  std::string pool;     // status [POOL], scale POOL
  std::string target;   // POOL[:WORKER]
  std::uint32_t workers = 0;
  bool wait = false;
  bool follow = false;
  std::size_t lines = control::kDefaultLogLines;
  std::string topic;  // help [COMMAND]
};

// Where scgictl's own messages go: stderr always, and with --json also a
// {"ok":false,"error":...} object on stdout, so that a script reading stdout
// sees one object whatever happened.
struct Report {
  std::ostream& out;
  std::ostream& err;
  bool json;

  int fail(int code, const std::string& message) const {
    err << "scgictl: " << message << "\n";
    if (json) out << json_text({{"ok", false}, {"error", message}}) << "\n" << std::flush;
    return code;
  }
};

// A usage error: what is wrong, the command's usage, where to read more.
int usage_error(std::ostream& err, const std::string& message, std::string_view command = {}) {
  err << "scgictl: " << message << "\n";
  if (const CommandInfo* info = find_command(command))
    err << "usage: scgictl " << info->usage << " (scgictl help " << info->name << " tells more)\n";
  else
    err << "usage: " << kGlobalUsage << " (scgictl help lists the commands)\n";
  return kExitUsage;
}

// The command word of a command line: the first word that is neither an
// option nor an option's value. Empty when there is none.
std::string command_word(int argc, const char* const* argv) {
  static constexpr std::array<std::string_view, 5> kTakesValue{"--socket", "--config", "--timeout",
                                                               "-n", "--lines"};
  for (int i = 1; i < argc; ++i) {
    const std::string_view word = argv[i];
    if (word == "--") return i + 1 < argc ? argv[i + 1] : "";
    if (std::find(kTakesValue.begin(), kTakesValue.end(), word) != kTakesValue.end()) {
      ++i;
      continue;
    }
    if (!word.empty() && word.front() == '-') continue;
    return std::string(word);
  }
  return {};
}

struct Usage {
  std::string error;
};

// The request the command line asks for, or a usage error.
std::variant<control::Request, Usage> build_request(Command command, const Arguments& arguments) {
  control::Request request;
  request.command = command;
  switch (command) {
    case Command::status:
    case Command::slowlog:
      request.pool = arguments.pool;
      if (request.pool.find(':') != std::string::npos)
        return Usage{fmt::format("{} takes a pool, not a worker: scgictl {} {}",
                                 control::command_name(command), control::command_name(command),
                                 request.pool.substr(0, request.pool.find(':')))};
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
    case Command::upgrade:
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

// A restart's step: {"progress":"..."}; nullopt for any other line.
std::optional<std::string> progress_step(std::string_view line) {
  const json parsed = json::parse(line, nullptr, false);
  if (!parsed.is_object() || parsed.contains("ok")) return std::nullopt;
  const auto step = parsed.find("progress");
  if (step == parsed.end() || !step->is_string()) return std::nullopt;
  return step->get<std::string>();
}

// Prints a successful reply for a person; returns the exit code.
int print_reply(const control::Request& request, const control::Reply& reply, const Report& report,
                const Console& console) {
  std::ostream& out = report.out;
  if (request.command == Command::status) {
    std::vector<control::PoolStatus> pools;
    try {
      reply.body.at("pools").get_to(pools);
    } catch (const json::exception& error) {
      return report.fail(kExitUnreachable,
                         fmt::format("the manager's status reply is not what this scgictl "
                                     "expects ({}); use --json to see it, and check that "
                                     "scgictl and scgi-manager are the same version",
                                     error.what()));
    }
    out << render_status(pools, {.color = console.color});
    return kExitOk;
  }
  if (request.command == Command::slowlog) {
    const auto entries = reply.body.find("entries");
    if (entries != reply.body.end() && entries->is_array()) out << render_slowlog(*entries);
    out << std::flush;
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

// Sends the request and prints what comes back: the steps of a restart, the
// reply, and for `logs -f` the lines that follow until Ctrl-C.
int run(control::Request request, const Arguments& arguments,
        std::optional<std::chrono::milliseconds> reply_timeout, const Report& report,
        const Console& console) {
  std::ostream& out = report.out;
  request.id = kRequestId;
  auto client = ControlClient::connect(arguments.socket, kConnectTimeout);
  if (!client) {
    if (arguments.config.empty()) return report.fail(kExitUnreachable, client.error());
    return report.fail(kExitUnreachable,
                       fmt::format("{} (the control_socket of {}; a manager listens on the one "
                                   "its file named when it started: after changing it, restart "
                                   "the manager)",
                                   client.error(), arguments.config));
  }
  ControlClient connection = std::move(client).value();
  std::optional<ControlClient::ReadOutcome> early;
  if (auto sent = connection.send(control::request_line(request), kSendTimeout); !sent) {
    // The manager may have refused the connection (a permission check) and
    // closed it before the request went out: its reason is waiting to be read.
    early = connection.read_line(kEarlyReplyTimeout);
    if (early->status != ControlClient::ReadStatus::line)
      return report.fail(kExitUnreachable, sent.error());
  }

  const bool follow = request.command == Command::logs && request.follow;
  // Ctrl-C ends a follow cleanly (exit 0); anything else it kills as usual.
  std::optional<InterruptSignals> signals;
  if (follow) signals.emplace();
  std::optional<Clock::time_point> deadline;
  if (reply_timeout) deadline = Clock::now() + *reply_timeout;
  std::vector<std::string> steps;  // a restart's progress, for --json
  bool replied = false;
  for (;;) {
    std::optional<std::chrono::milliseconds> wait;  // after the reply: as long as it takes
    if (!replied && deadline)
      wait = std::max(
          0ms, std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()));
    auto read = early ? *std::exchange(early, std::nullopt)
                      : connection.read_line(wait, signals ? signals->fd() : -1);
    switch (read.status) {
      case ControlClient::ReadStatus::line:
        break;
      case ControlClient::ReadStatus::interrupted:
        out << std::flush;
        return kExitOk;
      case ControlClient::ReadStatus::closed:
        return report.fail(
            kExitUnreachable,
            fmt::format("the manager on {} closed the connection{}", arguments.socket,
                        !replied ? " without a reply: is --socket the manager's control socket? "
                                   "Its log says why"
                                 : ": it stopped or restarted; run the command again"));
      case ControlClient::ReadStatus::timed_out:
        return report.fail(
            kExitUnreachable,
            fmt::format("no reply from the manager on {} within {}{}", arguments.socket,
                        format_duration(*reply_timeout),
                        request.command == Command::status || request.command == Command::logs
                            ? "; it may be overloaded or stuck: see its log"
                            : "; the command may still be in progress: check with scgictl "
                              "status, or give a longer --timeout"));
      case ControlClient::ReadStatus::failed:
        return report.fail(kExitUnreachable, read.error);
    }
    if (auto step = request.command == Command::restart ? progress_step(read.line) : std::nullopt) {
      if (arguments.json)
        steps.push_back(std::move(*step));
      else
        out << *step << "\n" << std::flush;
      continue;
    }
    auto parsed = control::parse_reply(read.line);
    if (!parsed)
      return report.fail(kExitUnreachable,
                         parsed.error() + " (is --socket the manager's control socket?)");
    const control::Reply& reply = parsed.value();
    if (reply.is_log) {
      out << (arguments.json ? read.line : reply.log) << "\n" << std::flush;
      continue;
    }
    if (replied) {  // after the reply, an error line: the manager ended the stream
      if (arguments.json) out << read.line << "\n" << std::flush;
      report.err << "scgictl: " << reply.error << "\n";
      return kExitFailed;
    }
    replied = true;
    // An error without our id came before the request was read: a refusal.
    const bool refused = !reply.ok && !reply.body.contains("id");
    int code = kExitOk;
    if (arguments.json) {
      json body = reply.body;
      body.erase("id");
      if (request.command == Command::restart) body["progress"] = steps;
      out << json_text(body) << "\n" << std::flush;
      if (!reply.ok) report.err << "scgictl: " << reply.error << "\n";
      code = reply.ok ? kExitOk : refused ? kExitUnreachable : kExitFailed;
    } else if (!reply.ok) {
      report.err << "scgictl: " << reply.error << "\n";
      code = refused ? kExitUnreachable : kExitFailed;
    } else {
      code = print_reply(request, reply, report, console);
    }
    if (code != kExitOk || !follow) return code;
  }
}

// `help` and `help COMMAND`: CLI11's help for the app or that command.
int print_help(CLI::App& app, const std::string& topic, const Report& report) {
  if (topic.empty()) {
    if (report.json) {
      json commands = json::array();
      for (const CommandInfo& info : kCommands)
        commands.push_back({{"name", info.name},
                            {"usage", "scgictl " + std::string(info.usage)},
                            {"summary", info.summary}});
      report.out << json_text({{"ok", true}, {"commands", commands}}) << "\n";
      return kExitOk;
    }
    report.out << app.get_formatter()->make_help(&app, "scgictl", CLI::AppFormatMode::Normal);
    return kExitOk;
  }
  const CommandInfo* info = find_command(topic);
  if (info == nullptr)
    return usage_error(
        report.err, fmt::format("no command \"{}\"; the commands are {}", topic, command_names()));
  if (report.json) {
    report.out << json_text({{"ok", true},
                             {"commands",
                              {{{"name", info->name},
                                {"usage", "scgictl " + std::string(info->usage)},
                                {"summary", info->summary}}}}})
               << "\n";
    return kExitOk;
  }
  CLI::App* sub = app.get_subcommand(std::string(info->name));
  report.out << sub->get_formatter()->make_help(sub, "scgictl " + std::string(info->name),
                                                CLI::AppFormatMode::Normal);
  return kExitOk;
}

}  // namespace

Console process_console() {
  Console console;
  const bool in_terminal = ::isatty(STDIN_FILENO) == 1;
  const bool out_terminal = ::isatty(STDOUT_FILENO) == 1;
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  console.color = out_terminal && (no_color == nullptr || *no_color == '\0') &&
                  (term == nullptr || std::string_view(term) != "dumb");
  if (in_terminal && out_terminal) {
    console.terminal_in = STDIN_FILENO;
    console.terminal_out = STDOUT_FILENO;
  }
  return console;
}

int scgictl_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
                 const Console& console) {
  CLI::App app{"Controls a running scgi-manager through its control socket.", "scgictl"};
  app.footer(fmt::format(
      "Run scgictl help COMMAND for one command's options.\n"
      "Exit status: 0 done, 1 the command failed, 2 usage error, 3 the manager cannot be "
      "reached.\nThe protocol and the --json output of each command: docs/control-protocol.md."));
  Arguments arguments;
  CLI::Option* socket_option =
      app.add_option("--socket", arguments.socket,
                     fmt::format("The manager's control socket (default: $SCGI_SOCKET, else {})",
                                 kDefaultControlSocket));
  app.add_option("--config", arguments.config,
                 "The manager's configuration file: connect to the control_socket of its "
                 "[manager] table (what the manager started with it listens on)")
      ->excludes(socket_option);
  app.add_flag("--json", arguments.json,
               "Machine-readable output: one JSON object (JSON lines for logs -f and top)");
  app.add_option("--timeout", arguments.timeout,
                 "How long to wait for the reply, e.g. 30s or 2m; 0 = no limit (default: 10s for "
                 "status and logs, no limit for commands that change things)");
  app.set_version_flag("--version", std::string("scgictl ") + SCGI_VERSION);
  app.require_subcommand(1);

  struct Sub {
    Command command;
    CLI::App* app;
  };
  std::vector<Sub> subs;
  auto add_named = [&](std::string_view name) {
    const CommandInfo* info = find_command(name);
    CLI::App* sub = app.add_subcommand(std::string(name), std::string(info->summary));
    sub->fallthrough();  // --json and friends after the command too
    return sub;
  };
  auto add = [&](Command command) {
    CLI::App* sub = add_named(control::command_name(command));
    subs.push_back({command, sub});
    return sub;
  };
  add(Command::status)->add_option("POOL", arguments.pool, "Only this pool");
  add(Command::start)->add_option("TARGET", arguments.target, "POOL or POOL:WORKER")->required();
  add(Command::stop)->add_option("TARGET", arguments.target, "POOL or POOL:WORKER")->required();
  add(Command::restart)->add_option("TARGET", arguments.target, "POOL or POOL:WORKER")->required();
  CLI::App* scale = add(Command::scale);
  scale->add_option("POOL", arguments.pool, "The pool")->required();
  scale->add_option("N", arguments.workers, "How many workers")->required();
  add(Command::reload);
  add(Command::upgrade);
  CLI::App* drain = add(Command::drain);
  drain->add_flag("--wait", arguments.wait, "Return once nothing is in flight on it");
  drain->add_option("TARGET", arguments.target, "POOL:WORKER")->required();
  add(Command::undrain)->add_option("TARGET", arguments.target, "POOL:WORKER")->required();
  CLI::App* logs = add(Command::logs);
  logs->add_option("TARGET", arguments.target, "POOL or POOL:WORKER")->required();
  logs->add_flag("-f,--follow", arguments.follow, "Keep printing new lines until interrupted");
  logs->add_option("-n,--lines", arguments.lines,
                   fmt::format("How many recent lines (default {}, at most {})",
                               control::kDefaultLogLines, control::kMaxLogLines))
      ->check(CLI::Range(std::size_t{0}, control::kMaxLogLines));
  add(Command::slowlog)->add_option("POOL", arguments.pool, "Only this pool");
  CLI::App* top = add_named("top");
  CLI::App* version = add_named("version");
  CLI::App* help = add_named("help");
  help->add_option("COMMAND", arguments.topic, "The command to explain");

  // An unknown command gets the list, rather than CLI11's "not expected".
  const std::string word = command_word(argc, argv);
  if (!word.empty() && find_command(word) == nullptr)
    return usage_error(
        err, fmt::format("unknown command \"{}\"; the commands are {}", word, command_names()));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::CallForVersion&) {
    out << "scgictl " << SCGI_VERSION << "\n";
    return kExitOk;
  } catch (const CLI::ParseError& error) {
    if (word.empty()) return usage_error(err, "a command is needed: one of " + command_names());
    return usage_error(err, fmt::format("{}: {}", word, error.what()), word);
  }
  const Report report{out, err, arguments.json};

  if (help->parsed()) return print_help(app, arguments.topic, report);
  if (version->parsed()) {
    if (arguments.json)
      out << json_text({{"ok", true}, {"version", SCGI_VERSION}}) << "\n";
    else
      out << "scgictl " << SCGI_VERSION << "\n";
    return kExitOk;
  }

  std::optional<std::chrono::milliseconds> reply_timeout;
  if (!arguments.timeout.empty()) {
    auto parsed = parse_duration(arguments.timeout);
    if (!parsed)
      return usage_error(err, "--timeout " + arguments.timeout + ": " + parsed.error(), word);
    if (parsed.value().count() > 0) reply_timeout = parsed.value();
  }

  if (!arguments.config.empty()) {
    // A file that cannot say where its manager listens: nothing is sent, so
    // a reload through it changes nothing, and says why.
    auto socket = control_socket_in(arguments.config);
    if (!socket)
      return report.fail(kExitUnreachable, socket.error() +
                                               " (--config: the control socket is read from this "
                                               "file; fix it, or give --socket PATH)");
    arguments.socket = std::move(socket).value();
  }

  if (top->parsed()) {
    const TopSettings settings{.socket = arguments.socket,
                               .color = console.color,
                               .terminal_in = console.terminal_in,
                               .terminal_out = console.terminal_out};
    return arguments.json ? run_top_json(settings, out, err) : run_top(settings, out, err);
  }

  const auto chosen =
      std::find_if(subs.begin(), subs.end(), [](const Sub& sub) { return sub.app->parsed(); });
  if (chosen == subs.end()) return usage_error(err, "a command is needed");  // unreachable
  if (arguments.timeout.empty() &&
      (chosen->command == Command::status || chosen->command == Command::logs ||
       chosen->command == Command::slowlog))
    reply_timeout = kQuickReplyTimeout;

  auto request = build_request(chosen->command, arguments);
  if (const auto* usage = std::get_if<Usage>(&request)) return usage_error(err, usage->error, word);
  return run(std::get<control::Request>(request), arguments, reply_timeout, report, console);
}

}  // namespace scgi::ctl
