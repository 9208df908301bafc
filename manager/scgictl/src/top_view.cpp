#include "top_view.hpp"

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "control_client.hpp"
#include "interrupt_signals.hpp"
#include "scgictl.hpp"
#include "status_table.hpp"

namespace scgi::ctl {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr auto kConnectTimeout = 1s;
constexpr auto kSendTimeout = 1s;
// A status reply is immediate; one this late means a stuck manager.
constexpr auto kReplyLimit = 5s;

std::string status_request() {
  control::Request request;
  request.command = control::Command::status;
  return control::request_line(request);
}

std::string clock_now() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  char text[16];
  return std::strftime(text, sizeof text, "%H:%M:%S", &local) > 0 ? text : "";
}

int milliseconds_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::clamp<long long>(left.count(), 0, 60'000));
}

// The terminal in the view's mode (keys one at a time, no echo; signals from
// the keyboard still work) and on the alternate screen, until left.
class TerminalSession {
 public:
  TerminalSession(int in, std::ostream& out) : in_(in), out_(out) {
    if (::tcgetattr(in_, &saved_) == 0) have_saved_ = true;
    enter();
  }
  ~TerminalSession() { leave(); }
  TerminalSession(const TerminalSession&) = delete;
  TerminalSession& operator=(const TerminalSession&) = delete;

  void enter() {
    if (active_) return;
    if (have_saved_) {
      termios raw = saved_;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));
      raw.c_cc[VMIN] = 1;
      raw.c_cc[VTIME] = 0;
      ::tcsetattr(in_, TCSANOW, &raw);
    }
    out_ << kEnterScreen << std::flush;
    active_ = true;
  }
  void leave() {
    if (!active_) return;
    out_ << kLeaveScreen << std::flush;
    if (have_saved_) ::tcsetattr(in_, TCSANOW, &saved_);
    active_ = false;
  }

 private:
  int in_;
  std::ostream& out_;
  termios saved_{};
  bool have_saved_ = false;
  bool active_ = false;
};

// The pools of a status reply line, or why there are none.
Result<std::vector<control::PoolStatus>> pools_of(const std::string& line) {
  using R = Result<std::vector<control::PoolStatus>>;
  auto reply = control::parse_reply(line);
  if (!reply) return R::fail(reply.error());
  if (!reply.value().ok) return R::fail("the manager says: " + reply.value().error);
  try {
    return R::ok(reply.value().body.at("pools").get<std::vector<control::PoolStatus>>());
  } catch (const json::exception& error) {
    return R::fail(std::string("the status reply is not what this scgictl expects: ") +
                   error.what());
  }
}

}  // namespace

std::string render_top_frame(const std::vector<control::PoolStatus>& pools,
                             const std::string& title, const std::string& problem,
                             std::size_t columns, std::size_t rows, bool color) {
  std::vector<std::string> lines{color ? paint(title, "1") : title};
  if (!problem.empty()) lines.push_back(color ? paint(problem, "31") : problem);
  lines.emplace_back();
  const std::string tables = render_status(pools, {.color = color, .latency = true});
  std::size_t start = 0;
  while (start < tables.size()) {
    const auto end = tables.find('\n', start);
    lines.push_back(tables.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (lines.size() > rows) lines.resize(rows);
  // Home, each line over the old one and cleared to its end, then the rest cleared.
  std::string frame = "\x1b[H";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    frame += clip_line(lines[i], columns) + "\x1b[K";
    if (i + 1 < lines.size()) frame += "\r\n";
  }
  return frame + "\x1b[J";
}

int run_top(const TopSettings& settings, std::ostream& out, std::ostream& err) {
  if (settings.terminal_in < 0 || settings.terminal_out < 0) {
    err << "scgictl: top is a live view for a terminal, and stdin or stdout is not one; for "
           "a script use scgictl --json top (a status object per second) or scgictl status\n";
    return kExitUsage;
  }
  auto connected = ControlClient::connect(settings.socket, kConnectTimeout);
  if (!connected) {
    err << "scgictl: " << connected.error() << "\n";
    return kExitUnreachable;
  }
  std::optional<ControlClient> client = std::move(connected).value();
  InterruptSignals signals({SIGINT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP});
  TerminalSession terminal(settings.terminal_in, out);

  std::vector<control::PoolStatus> pools;
  std::string problem;
  bool awaiting = false;  // a status request is out, its reply not in yet
  Clock::time_point sent_at{};
  Clock::time_point next_refresh = Clock::now();
  const auto draw = [&] {
    winsize size{};
    std::size_t columns = 80;
    std::size_t rows = 24;
    if (::ioctl(settings.terminal_out, TIOCGWINSZ, &size) == 0 && size.ws_col > 0 &&
        size.ws_row > 0) {
      columns = size.ws_col;
      rows = size.ws_row;
    }
    const std::string title =
        fmt::format("scgictl top  {}  {}  every {}s  q quits", settings.socket, clock_now(),
                    std::chrono::duration<double>(settings.interval).count());
    out << render_top_frame(pools, title, problem, columns, rows, settings.color) << std::flush;
  };
  const auto lose = [&](std::string why) {
    problem = std::move(why) + "; retrying every second";
    client.reset();
    awaiting = false;
    draw();
  };

  for (;;) {
    if (awaiting && Clock::now() - sent_at > kReplyLimit)
      lose(fmt::format("no status reply from the manager on {} within {}s", settings.socket,
                       std::chrono::duration_cast<std::chrono::seconds>(kReplyLimit).count()));
    if (!awaiting && Clock::now() >= next_refresh) {
      next_refresh = Clock::now() + settings.interval;
      if (!client) {
        auto again = ControlClient::connect(settings.socket, kConnectTimeout);
        if (again)
          client = std::move(again).value();
        else
          lose(again.error());
      }
      if (client) {
        if (auto sent = client->send(status_request(), kSendTimeout); !sent) {
          lose(sent.error());
        } else {
          awaiting = true;
          sent_at = Clock::now();
        }
      }
    }

    std::array<pollfd, 3> waits{{{settings.terminal_in, POLLIN, 0},
                                 {signals.fd(), POLLIN, 0},
                                 {client ? client->fd() : -1, POLLIN, 0}}};
    const int timeout = milliseconds_until(awaiting ? sent_at + kReplyLimit : next_refresh);
    if (::poll(waits.data(), waits.size(), timeout) < 0 && errno != EINTR) {
      terminal.leave();
      err << "scgictl: top: poll failed: " << std::strerror(errno) << "\n";
      return kExitFailed;
    }

    if ((waits[1].revents & POLLIN) != 0) {
      for (const int number : signals.take()) {
        if (number == SIGWINCH) {
          draw();
        } else if (number == SIGTSTP) {
          // Ctrl-Z: give the shell its terminal back, stop, and come back on fg.
          terminal.leave();
          ::raise(SIGSTOP);
          terminal.enter();
          draw();
        } else {
          return kExitOk;  // SIGINT, SIGTERM, SIGHUP: the session restores the terminal
        }
      }
    }
    if ((waits[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char keys[64];
      const ssize_t got = ::read(settings.terminal_in, keys, sizeof keys);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) return kExitOk;
      for (ssize_t i = 0; i < got; ++i)
        if (keys[i] == 'q' || keys[i] == 'Q') return kExitOk;
    }
    if (client && (waits[2].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      for (;;) {
        auto read = client->read_line(0ms);
        if (read.status == ControlClient::ReadStatus::timed_out) break;
        if (read.status != ControlClient::ReadStatus::line) {
          lose(read.status == ControlClient::ReadStatus::closed
                   ? fmt::format("the manager on {} closed the connection", settings.socket)
                   : read.error);
          break;
        }
        awaiting = false;
        auto fresh = pools_of(read.line);
        if (fresh) {
          pools = std::move(fresh).value();
          problem.clear();
        } else {
          problem = fresh.error();
        }
        draw();
      }
    }
  }
}

int run_top_json(const TopSettings& settings, std::ostream& out, std::ostream& err) {
  const auto fail = [&](int code, const std::string& message) {
    err << "scgictl: " << message << "\n";
    out << json{{"ok", false}, {"error", message}}.dump(-1, ' ', false,
                                                        json::error_handler_t::replace)
        << "\n"
        << std::flush;
    return code;
  };
  auto connected = ControlClient::connect(settings.socket, kConnectTimeout);
  if (!connected) return fail(kExitUnreachable, connected.error());
  ControlClient client = std::move(connected).value();
  InterruptSignals signals({SIGINT, SIGTERM, SIGHUP});
  for (;;) {
    const auto next = Clock::now() + settings.interval;
    if (auto sent = client.send(status_request(), kSendTimeout); !sent)
      return fail(kExitUnreachable, sent.error());
    auto read = client.read_line(kReplyLimit, signals.fd());
    switch (read.status) {
      case ControlClient::ReadStatus::line:
        break;
      case ControlClient::ReadStatus::interrupted:
        return kExitOk;
      case ControlClient::ReadStatus::closed:
        return fail(kExitUnreachable,
                    fmt::format("the manager on {} closed the connection", settings.socket));
      case ControlClient::ReadStatus::timed_out:
        return fail(kExitUnreachable, fmt::format("no status reply from the manager on {} within "
                                                  "5s; it may be overloaded or stuck",
                                                  settings.socket));
      case ControlClient::ReadStatus::failed:
        return fail(kExitUnreachable, read.error);
    }
    auto reply = control::parse_reply(read.line);
    if (!reply) return fail(kExitUnreachable, reply.error());
    json body = std::move(reply.value().body);
    body.erase("id");
    out << body.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
    if (!reply.value().ok) return kExitFailed;
    pollfd wait{signals.fd(), POLLIN, 0};
    if (::poll(&wait, 1, milliseconds_until(next)) > 0 || !signals.take().empty()) return kExitOk;
  }
}

}  // namespace scgi::ctl
