#include "listener.hpp"

#include <asio/basic_socket_acceptor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "local_shortage.hpp"
#include "scgi/log.hpp"
#include "scgi/runtime/unix_socket_file.hpp"
#include "scgi/units.hpp"

namespace scgi::proxy {
namespace {

using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;
constexpr int kBacklog = 4096;
// Out of descriptors, an accept loop waits this long before it tries again,
// doubling up to the ceiling: connections wait in the backlog meanwhile.
constexpr auto kFirstAcceptPause = std::chrono::milliseconds(100);
constexpr auto kAcceptPauseCeiling = std::chrono::milliseconds(1000);

std::string errno_text() {
  return std::strerror(errno);
}

// What the messages about a Unix front door's socket file tell the user.
const UnixSocketWording kFrontDoorWording{
    .live_owner = "another process accepts",
    .other_path = "choose another path",
    .group_setting = "listen_group",
};

// TCP_NODELAY on the listening socket: Linux gives it to every connection
// accepted from it, which spares a setsockopt per request (responses go out
// in pieces: no Nagle delay).
void set_no_delay_inherited(int fd, const Address& address) {
  const int one = 1;
  if (!address.is_unix()) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

struct Listener::Loop {
  explicit Loop(asio::io_context& context) : acceptor(context) {}
  Acceptor acceptor;
};

// Whether the listener's loops stopped accepting for want of descriptors,
// shared by them: a pause is one log line and its end another, at most once
// per interval even when the limit is hit again and again.
struct Listener::Shortage {
  std::atomic<bool> paused{false};
  std::atomic<bool> announced{false};  // this pause was logged: log its end too
  ReportThrottle reports{std::chrono::seconds(10)};
};

std::unique_ptr<Listener> Listener::open(const Address& address, const UnixSocketAccess& access,
                                         std::string& error) {
  auto endpoints = resolve_endpoints(address);
  if (!endpoints) {
    error = endpoints.error();
    return nullptr;
  }
  const Endpoint endpoint = endpoints.value().front();
  if (address.is_unix()) {
    const auto cleared = clear_stale_unix_socket(address.path, kFrontDoorWording, error);
    if (!cleared) return nullptr;
    if (*cleared == StaleSocket::removed)
      log_info("{}: removed the stale socket file left by an earlier process", address.to_string());
  }

  const int fd =
      ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = "cannot create a socket for " + address.to_string() + ": " + errno_text();
    return nullptr;
  }
  const int one = 1;
  if (!address.is_unix()) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.host_is_ipv6()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  // A Unix socket gets its mode and group before listen(): until then a
  // connect is refused, so there is no moment when anyone else could connect.
  int bind_error = 0;
  if (address.is_unix())
    bind_error = bind_unix_socket_file(fd, address.path);
  else if (::bind(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0)
    bind_error = errno;
  if (bind_error != 0) {
    error = "cannot listen on " + address.to_string() + ": " + std::strerror(bind_error);
    ::close(fd);
    return nullptr;
  }
  std::optional<UnixSocketFileId> file;
  if (address.is_unix()) {
    file = apply_unix_socket_access(address.path, access, kFrontDoorWording, error);
    if (!file) {
      ::close(fd);
      ::unlink(address.path.c_str());
      return nullptr;
    }
  }
  if (::listen(fd, kBacklog) != 0) {
    error = "cannot listen on " + address.to_string() + ": " + errno_text();
    ::close(fd);
    if (file) remove_unix_socket_file(address.path, *file);
    return nullptr;
  }
  set_no_delay_inherited(fd, address);
  return std::unique_ptr<Listener>(new Listener(address, endpoint, fd, file));
}

std::unique_ptr<Listener> Listener::adopt(const Address& address, int fd, std::string& error) {
  auto endpoints = resolve_endpoints(address);
  if (!endpoints) {
    error = endpoints.error();
    return nullptr;
  }
  int listening = 0;
  socklen_t size = sizeof listening;
  if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || listening == 0) {
    error = "the handed socket for " + address.to_string() + " (descriptor " + std::to_string(fd) +
            ") is not listening";
    return nullptr;
  }
  set_no_delay_inherited(fd, address);  // an earlier version did not
  std::optional<UnixSocketFileId> file;
  if (struct stat info{}; address.is_unix() && ::lstat(address.path.c_str(), &info) == 0)
    file = UnixSocketFileId{info.st_dev, info.st_ino};
  return std::unique_ptr<Listener>(new Listener(address, endpoints.value().front(), fd, file));
}

bool Listener::set_access(const UnixSocketAccess& access, std::string& error) {
  return !file_ ||
         apply_unix_socket_access(address_.path, access, kFrontDoorWording, error).has_value();
}

bool Listener::can_set_access(const UnixSocketAccess& access, std::string& error) const {
  return !file_ || access.group.empty() ||
         find_group(access.group, kFrontDoorWording.group_setting, error).has_value();
}

Listener::~Listener() {
  close();
}

void Listener::start(const std::vector<asio::io_context*>& contexts, Handler handler) {
  shortage_ = std::make_shared<Shortage>();
  for (asio::io_context* context : contexts) {
    auto loop = std::make_shared<Loop>(*context);
    const int copy = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
    asio::error_code ec;
    loop->acceptor.assign(endpoint_.protocol(), copy, ec);
    if (ec) {
      ::close(copy);
      log_error("cannot accept on {}: {}", address_.to_string(), ec.message());
      continue;
    }
    loops_.push_back(loop);
    auto accept_loop = [loop, handler, shortage = shortage_,
                        name = address_.to_string()]() -> asio::awaitable<void> {
      auto pause_for = kFirstAcceptPause;
      asio::steady_timer pause(loop->acceptor.get_executor());
      for (;;) {
        auto [ec, socket] =
            co_await loop->acceptor.async_accept(asio::experimental::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted) co_return;
        // Accepted just before the acceptor was closed (pause, close): the
        // connection is a client's all the same, served (or, while the
        // server stops, refused by the handler), never dropped here.
        if (!ec && !loop->acceptor.is_open()) {
          handler(std::move(socket));
          co_return;
        }
        if (!loop->acceptor.is_open()) co_return;
        if (ec) {
          if (!is_local_shortage(ec)) {
            log_error("accept on {} failed: {}", name, ec.message());
          } else if (std::uint64_t held_back = 0;
                     !shortage->paused.exchange(true) && shortage->reports.allow(held_back)) {
            shortage->announced = true;
            log_error(
                "accept on {}: {}: this process is short of descriptors or memory; new "
                "connections wait in the backlog until some close (retrying every {}-{})",
                name, ec.message(), format_duration(kFirstAcceptPause),
                format_duration(kAcceptPauseCeiling));
          }
          // No spinning: the connection stays in the backlog, and accept would fail again.
          pause.expires_after(pause_for);
          co_await pause.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
          pause_for = std::min(pause_for * 2, kAcceptPauseCeiling);
          continue;
        }
        pause_for = kFirstAcceptPause;
        if (shortage->paused.load(std::memory_order_relaxed) && shortage->paused.exchange(false) &&
            shortage->announced.exchange(false))
          log_info("accept on {}: descriptors free again; accepting", name);
        handler(std::move(socket));  // TCP_NODELAY came with it from the listening socket
      }
    };
    asio::co_spawn(*context, std::move(accept_loop),
                   [name = address_.to_string()](std::exception_ptr e) {
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& error) {
                       log_error("accept loop on {} ended: {}", name, error.what());
                     }
                   });
  }
}

asio::awaitable<void> Listener::visit_loop(std::shared_ptr<Loop> loop, bool close) {
  asio::error_code ignored;
  if (close) loop->acceptor.close(ignored);
  co_return;
}

asio::awaitable<void> Listener::pause(asio::any_io_executor control) {
  auto loops = std::exchange(loops_, {});
  for (const auto& loop : loops) {
    // Closed on its own thread; back here once it is. Then once more through
    // that thread: a connection accepted just before the close was queued
    // ahead of the second visit, so its exchange is counted by the time
    // pause() returns (and the caller waits for it).
    // Named, not temporaries of the co_await: g++ 12 destroys those twice.
    auto closing = visit_loop(loop, true);
    co_await asio::co_spawn(loop->acceptor.get_executor(), std::move(closing),
                            asio::bind_executor(control, asio::use_awaitable));
    auto passing = visit_loop(loop, false);
    co_await asio::co_spawn(loop->acceptor.get_executor(), std::move(passing),
                            asio::bind_executor(control, asio::use_awaitable));
  }
}

void Listener::close() {
  if (closed_.exchange(true)) return;
  for (const auto& loop : loops_) {
    // Each acceptor belongs to its thread: close it there.
    asio::post(loop->acceptor.get_executor(), [loop] {
      asio::error_code ignored;
      loop->acceptor.close(ignored);
    });
  }
  ::close(fd_);
  if (file_) remove_unix_socket_file(address_.path, *file_);
}

}  // namespace scgi::proxy
