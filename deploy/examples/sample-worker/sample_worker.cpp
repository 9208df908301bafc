// scgi-sample-worker: a classic single-threaded SCGI application, one request at
// a time, whose behaviour each request picks from its query string. The tests,
// the benchmark and the demo run it behind the proxy and the manager.
//
// One request, top to bottom: accept → read and parse the header (strict) →
// then, unless echo=1, read and discard exactly CONTENT_LENGTH body bytes →
// sleep_ms → fail=1 (exit 1, a crash) or close=1 (close, no answer) → answer →
// shutdown(SHUT_WR) → close. With echo=1 the answer starts after sleep_ms and
// the body is streamed back as it is read. Query keys (QUERY_STRING, "&"-separated):
//   sleep_ms=N   sleep before answering
//   fail=1       exit(1) without answering
//   close=1      close without answering
//   status=N     answer with this status (default 200)
//   size=N       a body of N bytes, byte i = i*31 mod 251 (streamed, never held whole)
//   drip_ms=N    with size=N: the body goes out in 1 KiB pieces, N ms apart (a slow generator)
//   echo=1       the body is the raw header netstring, then the request body, as received
//   head_only=1  headers only, no body
//   digest=1     the body is "length=N fnv1a=HEX" of the request body, read whole first
//                (what a front end that buffers, such as nginx, can carry for any size)
//   location=1   add "Location: /elsewhere" (with status=302: a redirect)
//   grow_kb=N    keep N KiB more memory for the rest of the process's life (a leak,
//                for memory-limit recycling)
// Every answer carries X-Worker-Pid and X-Request-Count (requests answered by
// this process, this one included), and X-Worker-Name with --name.
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "scgi/error_response.hpp"
#include "scgi/log.hpp"
#include "scgi/request_parser.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kInheritedFd = 3;                 // systemd's SD_LISTEN_FDS_START
constexpr std::size_t kChunkBytes = 64 * 1024;  // one read or one write
constexpr std::size_t kPatternPeriod = 251;     // byte i of size=N is i*31 mod 251
constexpr std::size_t kDripBytes = 1024;        // one piece of a drip_ms body
constexpr auto kLingerLimit = std::chrono::seconds(1);

volatile sig_atomic_t g_stop_requested = 0;

extern "C" void on_stop_signal(int) {
  g_stop_requested = 1;
}

struct Options {
  std::optional<int> port;
  std::string host = "127.0.0.1";
  std::string unix_path;
  std::string name;
  int backlog = SOMAXCONN;
  int io_timeout_s = 30;
  bool verbose = false;
};

// What one request asks for, read from its QUERY_STRING.
struct Behaviour {
  std::uint64_t sleep_ms = 0;
  bool fail = false;
  bool close = false;
  int status = 200;
  std::optional<std::uint64_t> size;
  std::uint64_t drip_ms = 0;
  bool echo = false;
  bool head_only = false;
  bool digest = false;
  bool location = false;
  std::uint64_t grow_kb = 0;
};

// 64-bit FNV-1a, enough to tell a body arrived intact.
struct Fnv1a {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  void add(std::string_view bytes) {
    for (const char c : bytes)
      hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  }
};

// Memory kept on purpose and touched, so that it is resident.
void leak(std::uint64_t kib) {
  static std::vector<std::unique_ptr<char[]>> kept;
  kept.push_back(std::make_unique<char[]>(kib * 1024));
  std::memset(kept.back().get(), 1, kib * 1024);
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Behaviour read_behaviour(std::string_view query) {
  Behaviour behaviour;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const std::size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const std::optional<std::uint64_t> value =
        eq == std::string_view::npos ? std::nullopt : parse_number(item.substr(eq + 1));
    if (!value) continue;  // Unknown or non-numeric items belong to the app, not to us.
    if (key == "sleep_ms") behaviour.sleep_ms = *value;
    if (key == "fail") behaviour.fail = *value != 0;
    if (key == "close") behaviour.close = *value != 0;
    if (key == "status" && *value >= 100 && *value <= 999)
      behaviour.status = static_cast<int>(*value);
    if (key == "size") behaviour.size = *value;
    if (key == "drip_ms") behaviour.drip_ms = *value;
    if (key == "echo") behaviour.echo = *value != 0;
    if (key == "head_only") behaviour.head_only = *value != 0;
    if (key == "digest") behaviour.digest = *value != 0;
    if (key == "location") behaviour.location = *value != 0;
    if (key == "grow_kb") behaviour.grow_kb = *value;
  }
  return behaviour;
}

// ---- Socket I/O: blocking, every return checked, never a SIGPIPE. ----

bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return false;  // The client went away (EPIPE, ECONNRESET) or stalled past the timeout.
    }
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

// Bytes read, 0 at EOF, -1 on error or timeout.
ssize_t receive(int fd, char* buffer, std::size_t size) {
  for (;;) {
    const ssize_t got = ::recv(fd, buffer, size, 0);
    if (got < 0 && errno == EINTR) continue;
    return got;
  }
}

// byte i = i*31 mod 251 depends only on i mod 251, so a buffer that is a whole
// number of periods long serves every chunk of every size=N body.
const std::string& size_pattern() {
  static const std::string pattern = [] {
    std::string bytes((kChunkBytes / kPatternPeriod) * kPatternPeriod, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i)
      bytes[i] = static_cast<char>((i % kPatternPeriod) * 31 % kPatternPeriod);
    return bytes;
  }();
  return pattern;
}

// `drip_ms` > 0: in pieces of kDripBytes, that long apart.
bool send_pattern(int fd, std::uint64_t size, std::uint64_t drip_ms) {
  const std::string& pattern = size_pattern();
  const std::size_t piece = drip_ms > 0 ? kDripBytes : pattern.size();
  while (size > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, piece));
    if (!send_all(fd, std::string_view(pattern).substr(0, n))) return false;
    size -= n;
    if (drip_ms > 0 && size > 0) std::this_thread::sleep_for(std::chrono::milliseconds(drip_ms));
  }
  return true;
}

// Closes so that the answer reaches the client: after shutdown(SHUT_WR), bytes
// still unread would make close() send a reset that can destroy the answer in
// flight. `linger`: wait (bounded) for the client's EOF, after a request that
// was not read to its end; otherwise only discard what already arrived.
void close_connection(int fd, bool linger) {
  ::shutdown(fd, SHUT_WR);
  std::array<char, 4096> scratch;
  if (linger) {
    const auto give_up = Clock::now() + kLingerLimit;
    while (Clock::now() < give_up) {
      pollfd pfd{fd, POLLIN, 0};
      if (::poll(&pfd, 1, 100) < 0 && errno != EINTR) break;
      if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      if (::recv(fd, scratch.data(), scratch.size(), MSG_DONTWAIT) <= 0) break;
    }
  } else {
    while (::recv(fd, scratch.data(), scratch.size(), MSG_DONTWAIT) > 0) {
    }
  }
  ::close(fd);
}

// ---- The application. ----

class SampleWorker {
 public:
  explicit SampleWorker(const Options& options) : options_(options), pid_(::getpid()) {}

  void serve(int client_fd);

 private:
  enum class Ending { answered, no_answer, client_gone, empty };

  std::string head(int status, std::optional<std::uint64_t> content_length,
                   std::string_view content_type) const;
  std::string extra_headers() const;
  Ending answer_bad_request(int fd, const scgi::RequestParser& parser);
  Ending handle(int fd, const scgi::RequestParser& parser, std::string_view body_start,
                int& status);

  const Options& options_;
  const pid_t pid_;
  std::uint64_t answered_ = 0;
  bool location_ = false;  // this request's answer carries a Location header
  std::array<char, kChunkBytes> buffer_{};
};

std::string SampleWorker::extra_headers() const {
  std::string headers = fmt::format("X-Worker-Pid: {}\r\nX-Request-Count: {}\r\n", pid_, answered_);
  if (!options_.name.empty()) headers += fmt::format("X-Worker-Name: {}\r\n", options_.name);
  if (location_) headers += "Location: /elsewhere\r\n";
  return headers;
}

std::string SampleWorker::head(int status, std::optional<std::uint64_t> content_length,
                               std::string_view content_type) const {
  std::string text = fmt::format("Status: {} {}\r\nContent-Type: {}\r\n{}", status,
                                 scgi::reason_phrase(status), content_type, extra_headers());
  if (content_length) text += fmt::format("Content-Length: {}\r\n", *content_length);
  return text + "\r\n";
}

SampleWorker::Ending SampleWorker::answer_bad_request(int fd, const scgi::RequestParser& parser) {
  ++answered_;
  std::string response =
      scgi::error_response(scgi::http_status(parser.error()), scgi::describe(parser.error()));
  response.insert(response.find("\r\n\r\n") + 2, extra_headers());
  return send_all(fd, response) ? Ending::answered : Ending::client_gone;
}

void SampleWorker::serve(int fd) {
  const auto started = Clock::now();
  location_ = false;
  scgi::RequestParser parser(scgi::RequestLimits{.max_header_bytes = 1024 * 1024});
  std::string_view body_start;
  bool any_byte = false;
  while (parser.status() == scgi::RequestParser::Status::need_more) {
    const ssize_t got = receive(fd, buffer_.data(), buffer_.size());
    if (got <= 0) break;
    any_byte = true;
    const std::string_view piece(buffer_.data(), static_cast<std::size_t>(got));
    const auto result = parser.feed(piece);
    body_start = piece.substr(result.consumed);
  }

  int status = 0;
  Ending ending = Ending::empty;
  bool read_to_end = true;
  switch (parser.status()) {
    case scgi::RequestParser::Status::need_more:
      // EOF before the first byte is a health check; anything else a client that gave up.
      ending = any_byte ? Ending::client_gone : Ending::empty;
      break;
    case scgi::RequestParser::Status::error:
      status = scgi::http_status(parser.error());
      ending = answer_bad_request(fd, parser);
      read_to_end = false;
      break;
    case scgi::RequestParser::Status::complete:
      ending = handle(fd, parser, body_start, status);
      read_to_end = ending != Ending::client_gone;
      break;
  }
  close_connection(fd, !read_to_end);

  if (options_.verbose && ending != Ending::empty) {
    const auto elapsed_ms =
        std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    const char* outcome = ending == Ending::answered    ? "answered"
                          : ending == Ending::no_answer ? "closed without answer"
                                                        : "client gone";
    const std::string_view rule =
        parser.status() == scgi::RequestParser::Status::error ? scgi::describe(parser.error()) : "";
    // Request data is quoted and escaped: it must not forge a line of the log.
    const auto or_dash = [](std::string_view text) {
      return text.empty() ? std::string("-") : scgi::quote_for_log(text);
    };
    scgi::log_info("pid={} request={} {} {} status={} {} {:.1f}ms{}{}", pid_, answered_,
                   or_dash(parser.find("REQUEST_METHOD")), or_dash(parser.find("REQUEST_URI")),
                   status, outcome, elapsed_ms, rule.empty() ? "" : ": ", rule);
  }
}

SampleWorker::Ending SampleWorker::handle(int fd, const scgi::RequestParser& parser,
                                          std::string_view body_start, int& status) {
  const Behaviour behaviour = read_behaviour(parser.find("QUERY_STRING"));
  location_ = behaviour.location;
  std::uint64_t body_left = parser.content_length();
  // Bytes past CONTENT_LENGTH are not ours (nginx's unbuffered-mode bug): drop them.
  body_start = body_start.substr(
      0, static_cast<std::size_t>(std::min<std::uint64_t>(body_left, body_start.size())));
  body_left -= body_start.size();

  Fnv1a digest;
  if (!behaviour.echo) {
    if (behaviour.digest) digest.add(body_start);
    while (body_left > 0) {
      const ssize_t got =
          receive(fd, buffer_.data(),
                  static_cast<std::size_t>(std::min<std::uint64_t>(body_left, buffer_.size())));
      if (got <= 0) return Ending::client_gone;
      body_left -= static_cast<std::uint64_t>(got);
      if (behaviour.digest)
        digest.add(std::string_view(buffer_.data(), static_cast<std::size_t>(got)));
    }
  }
  if (behaviour.grow_kb > 0) leak(behaviour.grow_kb);
  if (behaviour.sleep_ms > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(behaviour.sleep_ms));
  if (behaviour.fail) {
    if (options_.verbose) scgi::log_info("pid={} fail=1: exiting with code 1", pid_);
    std::_Exit(1);
  }
  if (behaviour.close) return Ending::no_answer;

  ++answered_;
  status = behaviour.status;
  if (behaviour.head_only) {
    return send_all(fd, head(status, std::nullopt, "text/plain")) ? Ending::answered
                                                                  : Ending::client_gone;
  }
  if (behaviour.echo) {
    const std::string& raw = parser.raw_header();
    if (!send_all(fd,
                  head(status, raw.size() + parser.content_length(), "application/octet-stream")) ||
        !send_all(fd, raw) || !send_all(fd, body_start))
      return Ending::client_gone;
    while (body_left > 0) {
      const ssize_t got =
          receive(fd, buffer_.data(),
                  static_cast<std::size_t>(std::min<std::uint64_t>(body_left, buffer_.size())));
      if (got <= 0) return Ending::client_gone;
      body_left -= static_cast<std::uint64_t>(got);
      if (!send_all(fd, std::string_view(buffer_.data(), static_cast<std::size_t>(got))))
        return Ending::client_gone;
    }
    return Ending::answered;
  }
  if (behaviour.size) {
    return send_all(fd, head(status, *behaviour.size, "application/octet-stream")) &&
                   send_pattern(fd, *behaviour.size, behaviour.drip_ms)
               ? Ending::answered
               : Ending::client_gone;
  }
  const std::string body = behaviour.digest ? fmt::format("length={} fnv1a={:016x}\n",
                                                          parser.content_length(), digest.hash)
                                            : fmt::format("hello from {}\n", pid_);
  return send_all(fd, head(status, body.size(), "text/plain") + body) ? Ending::answered
                                                                      : Ending::client_gone;
}

// ---- Listening: --port, --unix, or the socket systemd (or the manager) hands over. ----

[[noreturn]] void fail_start(std::string_view message, int code) {
  scgi::log_error("scgi-sample-worker: {}", message);
  std::exit(code);
}

int listen_tcp(const Options& options) {
  std::string host = options.host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(*options.port);
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0)
    fail_start(fmt::format("cannot resolve --host {}: {}", options.host, ::gai_strerror(rc)), 2);

  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail_start(fmt::format("socket: {}", std::strerror(errno)), 1);
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    fail_start(fmt::format("SO_REUSEADDR: {}", std::strerror(errno)), 1);
  if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0)
    fail_start(fmt::format("cannot bind {}:{}: {}", options.host, port, std::strerror(errno)), 1);
  ::freeaddrinfo(found);
  return fd;
}

int listen_unix(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof address.sun_path)
    fail_start(fmt::format("--unix path too long: {}", path), 2);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);

  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail_start(fmt::format("socket: {}", std::strerror(errno)), 1);
  // A socket file left by an earlier run would make bind fail; only a socket is removed.
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    fail_start(fmt::format("cannot bind unix:{}: {}", path, std::strerror(errno)), 1);
  return fd;
}

// systemd's convention (sd_listen_fds): LISTEN_PID names us, LISTEN_FDS=1, the socket is fd 3.
std::optional<int> inherited_socket() {
  const char* fds = std::getenv("LISTEN_FDS");
  const char* pid = std::getenv("LISTEN_PID");
  if (fds == nullptr || pid == nullptr) return std::nullopt;
  if (std::string_view(fds) != "1" || parse_number(pid) != static_cast<std::uint64_t>(::getpid()))
    return std::nullopt;
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDNAMES");
  struct stat st {};
  if (::fstat(kInheritedFd, &st) != 0 || !S_ISSOCK(st.st_mode))
    fail_start("LISTEN_FDS=1 but fd 3 is not a socket", 2);
  if (::fcntl(kInheritedFd, F_SETFD, FD_CLOEXEC) != 0)
    fail_start(fmt::format("fcntl on fd 3: {}", std::strerror(errno)), 1);
  return kInheritedFd;
}

std::string describe_listener(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "?";
  if (address.ss_family == AF_UNIX)
    return fmt::format("unix:{}", reinterpret_cast<const sockaddr_un&>(address).sun_path);
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&address), length, host, sizeof host, port,
                    sizeof port, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return "?";
  return address.ss_family == AF_INET6 ? fmt::format("[{}]:{}", host, port)
                                       : fmt::format("{}:{}", host, port);
}

// SIGTERM and SIGINT stay blocked while a request is served and are let in
// only while waiting for the next connection (ppoll), so the request in
// progress always finishes and no signal slips in between check and wait.
void install_stop_signals(sigset_t& waiting_mask) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  if (::sigaction(SIGTERM, &action, nullptr) != 0 || ::sigaction(SIGINT, &action, nullptr) != 0 ||
      ::sigaction(SIGPIPE, &ignore, nullptr) != 0 ||
      ::sigprocmask(SIG_BLOCK, &stop_signals, &waiting_mask) != 0)
    fail_start(fmt::format("signal set-up: {}", std::strerror(errno)), 1);
  sigdelset(&waiting_mask, SIGTERM);
  sigdelset(&waiting_mask, SIGINT);
}

// A client that stalls is given up after this, so that it cannot pin the only worker thread.
void set_io_timeout(int fd, int seconds) {
  const timeval timeout{.tv_sec = seconds, .tv_usec = 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0)
    scgi::log_warn("SO_RCVTIMEO/SO_SNDTIMEO: {}", std::strerror(errno));
}

int run(const Options& options) {
  sigset_t waiting_mask;
  install_stop_signals(waiting_mask);

  int listen_fd = -1;
  bool bound_here = true;
  if (options.port && !options.unix_path.empty()) {
    fail_start("give --port or --unix, not both", 2);
  } else if (options.port) {
    listen_fd = listen_tcp(options);
  } else if (!options.unix_path.empty()) {
    listen_fd = listen_unix(options.unix_path);
  } else if (const std::optional<int> inherited = inherited_socket()) {
    listen_fd = *inherited;
    bound_here = false;
  } else {
    fail_start(
        "nowhere to listen: give --port N or --unix PATH, or start it with LISTEN_FDS=1 and "
        "LISTEN_PID=<its pid> and the listening socket as fd 3",
        2);
  }
  // An inherited socket may already listen; listen() again is harmless and sets our backlog.
  if (::listen(listen_fd, options.backlog) != 0)
    fail_start(fmt::format("listen: {}", std::strerror(errno)), 1);
  const int flags = ::fcntl(listen_fd, F_GETFL);
  if (flags < 0 || ::fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0)
    fail_start(fmt::format("fcntl on the listening socket: {}", std::strerror(errno)), 1);

  scgi::log_info("scgi-sample-worker pid={} listening on {}{}", ::getpid(),
                 describe_listener(listen_fd), bound_here ? "" : " (inherited fd 3)");

  SampleWorker worker(options);
  while (!g_stop_requested) {
    pollfd pfd{listen_fd, POLLIN, 0};
    if (::ppoll(&pfd, 1, nullptr, &waiting_mask) < 0) {
      if (errno == EINTR) continue;
      fail_start(fmt::format("poll: {}", std::strerror(errno)), 1);
    }
    const int client = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
        continue;
      scgi::log_warn("accept: {}", std::strerror(errno));
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // do not spin
      continue;
    }
    set_io_timeout(client, options.io_timeout_s);
    worker.serve(client);
  }
  if (options.verbose) scgi::log_info("pid={} stopping on signal", ::getpid());
  ::close(listen_fd);
  if (bound_here && !options.unix_path.empty()) ::unlink(options.unix_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "A sample single-threaded SCGI worker whose behaviour each request picks from its "
      "query string (sleep_ms, fail, close, status, size, echo, head_only, digest, location, "
      "grow_kb).",
      "scgi-sample-worker"};
  Options options;
  int port = 0;
  auto* port_option = app.add_option("--port", port, "Listen on this TCP port (0: any free port)")
                          ->check(CLI::Range(0, 65535));
  app.add_option("--host", options.host, "Address for --port: 127.0.0.1 (default), [::1], ...");
  app.add_option("--unix", options.unix_path, "Listen on this Unix socket path instead");
  app.add_option("--name", options.name, "Sent back in an X-Worker-Name header");
  app.add_option("--backlog", options.backlog, "listen() backlog")->check(CLI::PositiveNumber);
  app.add_option("--io-timeout", options.io_timeout_s,
                 "Seconds a read or a write may block before the client is given up")
      ->check(CLI::PositiveNumber);
  app.add_flag("--verbose", options.verbose, "Log one line per request to stderr");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }
  if (port_option->count() > 0) options.port = port;
  return run(options);
}
