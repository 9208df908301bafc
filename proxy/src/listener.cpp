#include "listener.hpp"

#include <asio/basic_socket_acceptor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "local_shortage.hpp"
#include "scgi/log.hpp"
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

// A Unix socket file nobody accepts on is stale (its process died): remove it.
// A live one, or a file that is not a socket, is left alone and reported.
bool clear_stale_unix_socket(const std::string& path, std::string& error) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return true;  // nothing there
  if (!S_ISSOCK(info.st_mode)) {
    error = path + " exists and is not a socket; remove it or choose another path";
    return false;
  }
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(probe);
  if (live) {
    error = "another process accepts on " + path;
    return false;
  }
  ::unlink(path.c_str());
  return true;
}

// Gives the socket file at `path` its group, then its mode (in that order, so
// the group bits never apply to the wrong group). By path: the file was just
// bound by this process in a folder that only trusted users may change
// (others cannot rename or replace it there), and lchown does not follow links.
bool apply_access(const std::string& path, const UnixSocketAccess& access, std::string& error) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    error = "cannot stat " + path + ": " + errno_text();
    return false;
  }
  if (!S_ISSOCK(info.st_mode)) {
    error = path + " is no longer a socket: another process replaced it";
    return false;
  }
  if (!access.group.empty()) {
    const group* found = ::getgrnam(access.group.c_str());
    if (found == nullptr) {
      error = "listen_group: no group \"" + access.group + "\" on this machine";
      return false;
    }
    if (::lchown(path.c_str(), static_cast<uid_t>(-1), found->gr_gid) != 0) {
      error = "cannot give " + path + " to listen_group " + access.group + ": " + errno_text() +
              (errno == EPERM ? " (a daemon that is not root must be a member of the group)" : "");
      return false;
    }
  }
  if (::chmod(path.c_str(), static_cast<mode_t>(access.mode)) != 0) {
    error = fmt::format("cannot make {} mode {:04o}: {}", path, access.mode, errno_text());
    return false;
  }
  return true;
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
  if (address.is_unix() && !clear_stale_unix_socket(address.path, error)) return nullptr;

  const int fd =
      ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    error = "cannot create a socket for " + address.to_string() + ": " + errno_text();
    return nullptr;
  }
  const int one = 1;
  if (!address.is_unix()) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (address.host_is_ipv6()) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  // A Unix socket is born 0600, whatever the umask, and gets its mode and
  // group before listen(): until then a connect is refused, so there is no
  // moment when anyone else could connect. (The umask is the process's: a
  // file another thread creates meanwhile is born narrower, never wider.)
  const mode_t old_umask = address.is_unix() ? ::umask(0177) : 0;
  const int bound = ::bind(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size()));
  const int bind_errno = errno;
  if (address.is_unix()) ::umask(old_umask);
  if (bound != 0) {
    error = "cannot listen on " + address.to_string() + ": " + std::strerror(bind_errno);
    ::close(fd);
    return nullptr;
  }
  if ((address.is_unix() && !apply_access(address.path, access, error)) ||
      ::listen(fd, kBacklog) != 0) {
    if (error.empty()) error = "cannot listen on " + address.to_string() + ": " + errno_text();
    ::close(fd);
    if (address.is_unix()) ::unlink(address.path.c_str());
    return nullptr;
  }
  return std::unique_ptr<Listener>(new Listener(address, endpoint, fd));
}

bool Listener::set_access(const UnixSocketAccess& access, std::string& error) {
  return !address_.is_unix() || apply_access(address_.path, access, error);
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
    const bool tcp = !address_.is_unix();
    auto accept_loop = [loop, handler, tcp, shortage = shortage_,
                        name = address_.to_string()]() -> asio::awaitable<void> {
      auto pause_for = kFirstAcceptPause;
      asio::steady_timer pause(loop->acceptor.get_executor());
      for (;;) {
        auto [ec, socket] =
            co_await loop->acceptor.async_accept(asio::experimental::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted || !loop->acceptor.is_open()) co_return;
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
        if (tcp) set_no_delay(socket);  // responses go out in pieces: no Nagle delay
        handler(std::move(socket));
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
  if (address_.is_unix()) ::unlink(address_.path.c_str());
}

}  // namespace scgi::proxy
