#include "scgi/address.hpp"

#include <arpa/inet.h>

#include <charconv>

namespace scgi {
namespace {

bool is_ipv4_literal(const std::string& host) {
  in_addr out{};
  return inet_pton(AF_INET, host.c_str(), &out) == 1;
}

bool is_ipv6_literal(const std::string& host) {
  in6_addr out{};
  return inet_pton(AF_INET6, host.c_str(), &out) == 1;
}

// RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
bool is_host_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  std::size_t label_length = 0;
  char previous = '.';
  for (char c : host) {
    if (c == '.') {
      if (label_length == 0 || previous == '-') return false;
      label_length = 0;
    } else {
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (!alnum && (c != '-' || label_length == 0)) return false;
      if (++label_length > 63) return false;
    }
    previous = c;
  }
  return previous != '-';
}

// "256.1.1.1" or "10.0.0" is a mistyped IPv4 address, not a host name: a
// top-level label is never all digits (RFC 1123, 2.1).
bool looks_like_ipv4(std::string_view host) {
  return !host.empty() && host.find_first_not_of("0123456789.") == std::string_view::npos;
}

}  // namespace

bool Address::host_is_ipv6() const {
  return kind == Kind::tcp && host.find(':') != std::string::npos;
}

std::string Address::to_string() const {
  if (is_unix()) return "unix:" + path;
  if (host_is_ipv6()) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<Address> parse_address(std::string_view text) {
  using R = Result<Address>;
  const std::string quoted = "\"" + std::string(text) + "\"";
  Address address;
  if (text.starts_with("unix:")) {
    address.kind = Address::Kind::unix_socket;
    address.path = std::string(text.substr(5));
    if (address.path.empty()) return R::fail("address " + quoted + " has no path after \"unix:\"");
    if (address.path.find('\0') != std::string::npos)
      return R::fail("address " + quoted + " contains a NUL byte");
    if (address.path.size() > kMaxUnixPathLength)
      return R::fail("Unix socket path " + quoted + " is longer than " +
                     std::to_string(kMaxUnixPathLength) + " bytes, the most the kernel takes");
    return R::ok(std::move(address));
  }

  std::string_view host;
  std::string_view port;
  if (text.starts_with("[")) {
    const auto close = text.find(']');
    if (close == std::string_view::npos)
      return R::fail("address " + quoted + " opens \"[\" without a closing \"]\"");
    host = text.substr(1, close - 1);
    if (text.substr(close + 1, 1) != ":")
      return R::fail("address " + quoted + " needs \":PORT\" after the \"]\"");
    port = text.substr(close + 2);
    address.host = std::string(host);
    if (!is_ipv6_literal(address.host))
      return R::fail("\"" + address.host + "\" in " + quoted + " is not an IPv6 address");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return R::fail("address " + quoted +
                     " needs a port: write HOST:PORT, [IPV6]:PORT or unix:PATH");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    address.host = std::string(host);
    if (host.empty())
      return R::fail("address " + quoted +
                     " has no host: write 0.0.0.0:PORT for every interface, or 127.0.0.1:PORT "
                     "for this machine only");
    if (host.find(':') != std::string_view::npos)
      return R::fail("address " + quoted +
                     ": put an IPv6 address in brackets, e.g. \"[::1]:4000\"");
    if (!is_ipv4_literal(address.host) && looks_like_ipv4(host))
      return R::fail("\"" + address.host + "\" in " + quoted +
                     " is not an IPv4 address: write four numbers 0-255 separated by dots");
    if (!is_ipv4_literal(address.host) && !is_host_name(host))
      return R::fail("\"" + address.host + "\" in " + quoted +
                     " is neither an IPv4 address nor a host name (letters, digits, \"-\" and "
                     "dots)");
  }

  unsigned value = 0;
  const auto ec = std::from_chars(port.data(), port.data() + port.size(), value).ec;
  if (port.empty()) return R::fail("address " + quoted + " needs a port number after the \":\"");
  // Digits only: from_chars then reads them all, or overflows.
  if (port.find_first_not_of("0123456789") != std::string_view::npos)
    return R::fail("port \"" + std::string(port) + "\" in " + quoted + " is not a number");
  if (ec == std::errc::result_out_of_range || value == 0 || value > 65535)
    return R::fail("port " + std::string(port) + " in " + quoted + " is out of range 1-65535");
  address.port = static_cast<std::uint16_t>(value);
  return R::ok(std::move(address));
}

}  // namespace scgi
