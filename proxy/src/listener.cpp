#include "scgi/proxy/listener.hpp"

#include <asio/basic_socket_acceptor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "scgi/log.hpp"

namespace scgi::proxy {
namespace {

using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;
constexpr int kBacklog = 4096;

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

}  // namespace

struct Listener::Loop {
  explicit Loop(asio::io_context& context) : acceptor(context) {}
  Acceptor acceptor;
};

std::unique_ptr<Listener> Listener::open(const Address& address, std::string& error) {
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
  if (::bind(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0 ||
      ::listen(fd, kBacklog) != 0) {
    error = "cannot listen on " + address.to_string() + ": " + errno_text();
    ::close(fd);
    return nullptr;
  }
  return std::unique_ptr<Listener>(new Listener(address, endpoint, fd));
}

Listener::~Listener() {
  close();
}

void Listener::start(const std::vector<asio::io_context*>& contexts, Handler handler) {
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
    auto accept_loop = [loop, handler, tcp,
                        name = address_.to_string()]() -> asio::awaitable<void> {
      for (;;) {
        auto [ec, socket] =
            co_await loop->acceptor.async_accept(asio::experimental::as_tuple(asio::use_awaitable));
        if (ec == asio::error::operation_aborted || !loop->acceptor.is_open()) co_return;
        if (ec) {
          // Out of descriptors or memory: say so, pause, and go on accepting.
          log_error("accept on {} failed: {}", name, ec.message());
          asio::steady_timer pause(loop->acceptor.get_executor(), std::chrono::milliseconds(100));
          co_await pause.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
          continue;
        }
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
