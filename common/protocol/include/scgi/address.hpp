// Where to listen or connect: "127.0.0.1:4000", "[::1]:4000", "localhost:4000"
// or "unix:/run/scgi/app.sock", as written in configuration files.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "scgi/result.hpp"

namespace scgi {

struct Address {
  enum class Kind { tcp, unix_socket };

  Kind kind = Kind::tcp;
  std::string host;  // tcp: an IPv4 or IPv6 literal (no brackets) or a host name
  std::uint16_t port = 0;
  std::string path;  // unix_socket: the file system path

  bool is_unix() const { return kind == Kind::unix_socket; }
  bool host_is_ipv6() const;
  // The canonical spelling, which parse_address reads back to the same value.
  std::string to_string() const;

  auto operator<=>(const Address&) const = default;
};

// The longest Unix socket path the kernel takes (sun_path less its NUL).
inline constexpr std::size_t kMaxUnixPathLength = 107;

Result<Address> parse_address(std::string_view text);

}  // namespace scgi
