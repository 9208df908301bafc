#include "scgi/runtime/endpoint.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include <sys/un.h>

namespace scgi {

Result<std::vector<Endpoint>> resolve_endpoints(const Address& address) {
  using R = Result<std::vector<Endpoint>>;
  if (address.is_unix())
    return R::ok({Endpoint(asio::local::stream_protocol::endpoint(address.path))});

  asio::error_code ec;
  const auto ip = asio::ip::make_address(address.host, ec);
  if (!ec) return R::ok({Endpoint(asio::ip::tcp::endpoint(ip, address.port))});

  asio::io_context context;
  asio::ip::tcp::resolver resolver(context);
  const auto results = resolver.resolve(address.host, std::to_string(address.port), ec);
  if (ec) return R::fail("cannot resolve \"" + address.host + "\": " + ec.message());
  std::vector<Endpoint> endpoints;
  for (const auto& entry : results)
    endpoints.emplace_back(entry.endpoint());
  if (endpoints.empty()) return R::fail("\"" + address.host + "\" has no addresses");
  return R::ok(std::move(endpoints));
}

void set_no_delay(Socket& socket) {
  asio::error_code ignored;  // Only a latency hint: a failure changes nothing else.
  socket.set_option(asio::ip::tcp::no_delay(true), ignored);
}

std::string endpoint_to_string(const Endpoint& endpoint) {
  const int family = endpoint.protocol().family();
  if (family == AF_UNIX) {
    const auto* raw = reinterpret_cast<const sockaddr_un*>(endpoint.data());
    const std::size_t length = endpoint.size() - offsetof(sockaddr_un, sun_path);
    std::string path(raw->sun_path, length);
    if (const auto nul = path.find('\0'); nul != std::string::npos && nul != 0) path.resize(nul);
    return "unix:" + path;
  }
  asio::ip::tcp::endpoint tcp;
  tcp.resize(endpoint.size());
  std::memcpy(tcp.data(), endpoint.data(), endpoint.size());
  const auto ip = tcp.address();
  return (ip.is_v6() ? "[" + ip.to_string() + "]" : ip.to_string()) + ":" +
         std::to_string(tcp.port());
}

}  // namespace scgi
