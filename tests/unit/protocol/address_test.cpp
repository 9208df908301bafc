#include "scgi/address.hpp"

#include <catch2/catch.hpp>

#include <string>

using Catch::Matchers::Contains;
using scgi::Address;
using scgi::parse_address;

namespace {

Address address_of(std::string_view text) {
  const auto result = parse_address(text);
  INFO("parsing \"" << text << "\": " << (result ? std::string("ok") : result.error()));
  REQUIRE(result);
  return result.value();
}

std::string error_of(std::string_view text) {
  const auto result = parse_address(text);
  INFO("parsing \"" << text << "\"");
  REQUIRE_FALSE(result);
  return result.error();
}

}  // namespace

TEST_CASE("an IPv4 address with a port", "[address]") {
  const Address address = address_of("127.0.0.1:4000");
  CHECK(address.kind == Address::Kind::tcp);
  CHECK_FALSE(address.is_unix());
  CHECK_FALSE(address.host_is_ipv6());
  CHECK(address.host == "127.0.0.1");
  CHECK(address.port == 4000);
  CHECK(address.path.empty());
  CHECK(address_of("0.0.0.0:1").port == 1);
  CHECK(address_of("255.255.255.255:65535").port == 65535);
}

TEST_CASE("an IPv6 address goes in brackets", "[address]") {
  const Address address = address_of("[::1]:4000");
  CHECK(address.kind == Address::Kind::tcp);
  CHECK(address.host_is_ipv6());
  CHECK(address.host == "::1");
  CHECK(address.port == 4000);
  CHECK(address_of("[::]:80").host == "::");
  CHECK(address_of("[2001:db8::1]:443").host == "2001:db8::1");
  CHECK(address_of("[::ffff:127.0.0.1]:80").host == "::ffff:127.0.0.1");
}

TEST_CASE("a host name with a port", "[address]") {
  CHECK(address_of("localhost:4000").host == "localhost");
  CHECK(address_of("app.default.svc.cluster.local:5000").host == "app.default.svc.cluster.local");
  CHECK(address_of("My-Host.example:80").host == "My-Host.example");
  CHECK(address_of("a1.b-2.c:80").host == "a1.b-2.c");
  CHECK(address_of("1host:80").host == "1host");
  CHECK(address_of("example.com.:80").host == "example.com.");  // fully qualified
  CHECK(address_of(std::string(63, 'a') + ":80").host == std::string(63, 'a'));
}

TEST_CASE("a Unix socket path after unix:", "[address]") {
  const Address address = address_of("unix:/run/scgi/app.sock");
  CHECK(address.kind == Address::Kind::unix_socket);
  CHECK(address.is_unix());
  CHECK_FALSE(address.host_is_ipv6());
  CHECK(address.path == "/run/scgi/app.sock");
  CHECK(address.host.empty());
  CHECK(address.port == 0);
  CHECK(address_of("unix:relative.sock").path == "relative.sock");
  const std::string longest = "/" + std::string(scgi::kMaxUnixPathLength - 1, 'x');
  CHECK(address_of("unix:" + longest).path == longest);
}

TEST_CASE("a Unix socket address without a usable path is refused", "[address]") {
  CHECK_THAT(error_of("unix:"), Contains("has no path"));
  CHECK_THAT(error_of(std::string("unix:/run/a\0b", 13)), Contains("NUL"));
  const std::string too_long = "/" + std::string(scgi::kMaxUnixPathLength, 'x');
  CHECK_THAT(error_of("unix:" + too_long), Contains("longer than 107 bytes"));
}

TEST_CASE("an address without a port says how to write one", "[address]") {
  CHECK_THAT(error_of(""), Contains("needs a port") && Contains("HOST:PORT"));
  CHECK_THAT(error_of("127.0.0.1"), Contains("needs a port") && Contains("unix:PATH"));
  CHECK_THAT(error_of("localhost"), Contains("needs a port"));
  CHECK_THAT(error_of("127.0.0.1:"), Contains("needs a port number after"));
  CHECK_THAT(error_of("[::1]"), Contains("needs \":PORT\" after the \"]\""));
  CHECK_THAT(error_of("[::1]4000"), Contains("needs \":PORT\""));
  CHECK_THAT(error_of("[::1]:"), Contains("needs a port number"));
}

TEST_CASE("every malformed port is refused", "[address]") {
  CHECK_THAT(error_of("127.0.0.1:http"), Contains("port \"http\"") && Contains("not a number"));
  CHECK_THAT(error_of("127.0.0.1:+80"), Contains("not a number"));
  CHECK_THAT(error_of("127.0.0.1:-80"), Contains("not a number"));
  CHECK_THAT(error_of("127.0.0.1: 80"), Contains("not a number"));
  CHECK_THAT(error_of("127.0.0.1:80 "), Contains("not a number"));
  CHECK_THAT(error_of("127.0.0.1:8o"), Contains("not a number"));
  CHECK_THAT(error_of("127.0.0.1:0"), Contains("out of range 1-65535"));
  CHECK_THAT(error_of("127.0.0.1:65536"), Contains("out of range 1-65535"));
  CHECK_THAT(error_of("[::1]:70000"), Contains("out of range"));
}

TEST_CASE("a port too large for any integer is out of range, not 'not a number'", "[address]") {
  CHECK_THAT(error_of("127.0.0.1:99999999999999999999"), Contains("out of range 1-65535"));
}

TEST_CASE("every malformed host is refused", "[address]") {
  CHECK_THAT(error_of(":4000"), Contains("has no host") && Contains("0.0.0.0:PORT"));
  CHECK_THAT(error_of("::1:4000"), Contains("put an IPv6 address in brackets"));
  CHECK_THAT(error_of("[::1:4000"), Contains("without a closing \"]\""));
  CHECK_THAT(error_of("[127.0.0.1]:4000"), Contains("is not an IPv6 address"));
  CHECK_THAT(error_of("[]:4000"), Contains("is not an IPv6 address"));
  CHECK_THAT(error_of("[fe80::1%eth0]:80"), Contains("is not an IPv6 address"));
  CHECK_THAT(error_of("my_host:80"), Contains("neither an IPv4 address nor a host name"));
  CHECK_THAT(error_of("-host:80"), Contains("neither"));
  CHECK_THAT(error_of("host-:80"), Contains("neither"));
  CHECK_THAT(error_of("a..b:80"), Contains("neither"));
  CHECK_THAT(error_of(".a:80"), Contains("neither"));
  CHECK_THAT(error_of("a-.b:80"), Contains("neither"));
  CHECK_THAT(error_of(" localhost:80"), Contains("neither"));
  CHECK_THAT(error_of(std::string(64, 'a') + ":80"), Contains("neither"));  // label over 63
  std::string long_name;
  for (int i = 0; i < 64; ++i)
    long_name += "abc.";
  CHECK_THAT(error_of(long_name + ":80"), Contains("neither"));  // over 253
}

TEST_CASE("a mistyped IPv4 address is not taken for a host name", "[address]") {
  CHECK_THAT(error_of("256.0.0.1:80"), Contains("is not an IPv4 address") && Contains("0-255"));
  CHECK_THAT(error_of("127.0.0:80"), Contains("is not an IPv4 address"));
  CHECK_THAT(error_of("127.0.0.1.1:80"), Contains("is not an IPv4 address"));
  CHECK_THAT(error_of("1:80"), Contains("is not an IPv4 address"));
}

TEST_CASE("to_string spells an address the way parse_address reads it back", "[address]") {
  for (const char* text :
       {"127.0.0.1:4000", "[::1]:4000", "[2001:db8::1]:443", "localhost:80",
        "unix:/run/scgi/app.sock", "unix:relative.sock", "0.0.0.0:1", "[::]:65535"}) {
    const Address address = address_of(text);
    CHECK(address.to_string() == text);
    CHECK(address_of(address.to_string()) == address);
  }
}

TEST_CASE("addresses compare by kind, host, port and path", "[address]") {
  CHECK(address_of("127.0.0.1:4000") == address_of("127.0.0.1:4000"));
  CHECK(address_of("127.0.0.1:4000") != address_of("127.0.0.1:4001"));
  CHECK(address_of("127.0.0.1:4000") != address_of("127.0.0.2:4000"));
  CHECK(address_of("unix:/a") != address_of("unix:/b"));
  CHECK(address_of("unix:/a") == address_of("unix:/a"));
  CHECK(address_of("127.0.0.1:4000") < address_of("127.0.0.1:4001"));
}
