// Who holds a loopback port, read from /proc/net/tcp and tcp6 as the kernel
// prints them, and who listens behind a Unix connection.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socket_owner.hpp"

using scgi::manager::loopback_listener_uids;

namespace {

constexpr const char* kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n"
    // 127.0.0.1:8080 listening, uid 65534
    "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 65534        0 "
    "1 1 0000000000000000 100 0 0 10 0\n"
    // 0.0.0.0:8080 listening, uid 1000
    "   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 "
    "2 1 0000000000000000 100 0 0 10 0\n"
    // 10.0.0.1:8080 listening, uid 7: not reachable on 127.0.0.1
    "   2: 0100000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     7        0 "
    "3 1 0000000000000000 100 0 0 10 0\n"
    // 127.0.0.1:8080 established (state 01), uid 9: a connection, not a listener
    "   3: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     9        0 "
    "4 1 0000000000000000 100 0 0 10 0\n"
    // 127.0.0.1:8081 listening, uid 0: another port
    "   4: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
    "5 1 0000000000000000 100 0 0 10 0\n";

constexpr const char* kTcp6 =
    "  sl  local_address                         remote_address                        st "
    "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    // [::]:8080, uid 42
    "   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000    42        0 6 1 0000000000000000 100 0 0 10 0\n"
    // [::1]:8080, uid 43: IPv6 loopback only
    "   1: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000    43        0 7 1 0000000000000000 100 0 0 10 0\n"
    // [::ffff:127.0.0.1]:8080, uid 44
    "   2: 0000000000000000FFFF00000100007F:1F90 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000    44        0 8 1 0000000000000000 100 0 0 10 0\n";

}  // namespace

TEST_CASE("every listener that takes 127.0.0.1:PORT is found with its uid", "[manager][owner]") {
  CHECK(loopback_listener_uids(kTcp, kTcp6, 8080) == std::vector<uid_t>{65534, 1000, 42, 44});
  CHECK(loopback_listener_uids(kTcp, kTcp6, 8081) == std::vector<uid_t>{0});
  CHECK(loopback_listener_uids(kTcp, "", 8082).empty());
  CHECK(loopback_listener_uids("", "", 8080).empty());
  CHECK(loopback_listener_uids("header only\n garbage row\n", "", 8080).empty());
}

TEST_CASE("this machine's own listener shows with this process's uid", "[manager][owner]") {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const std::uint16_t port = ntohs(address.sin_port);
  CHECK(loopback_listener_uids(port).value().empty());  // bound, not listening
  REQUIRE(::listen(fd, 1) == 0);
  CHECK(loopback_listener_uids(port).value() == std::vector<uid_t>{::geteuid()});
  ::close(fd);

  // [::] takes 127.0.0.1 too (unless IPV6_V6ONLY); [::1] does not.
  for (const bool any : {true, false}) {
    const int v6 = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(v6 >= 0);
    sockaddr_in6 address6{};
    address6.sin6_family = AF_INET6;
    address6.sin6_addr = any ? in6addr_any : in6addr_loopback;
    socklen_t length6 = sizeof address6;
    if (::bind(v6, reinterpret_cast<sockaddr*>(&address6), sizeof address6) != 0) {
      ::close(v6);
      WARN("no IPv6 here: not checked");
      return;
    }
    REQUIRE(::getsockname(v6, reinterpret_cast<sockaddr*>(&address6), &length6) == 0);
    REQUIRE(::listen(v6, 1) == 0);
    const auto uids = loopback_listener_uids(ntohs(address6.sin6_port)).value();
    CHECK(uids == (any ? std::vector<uid_t>{::geteuid()} : std::vector<uid_t>{}));
    ::close(v6);
  }
}

TEST_CASE("the uid behind a Unix connection is its peer's", "[manager][owner]") {
  int pair[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
  CHECK(scgi::manager::unix_peer_uid(pair[0]).value() == ::geteuid());
  ::close(pair[0]);
  ::close(pair[1]);
  CHECK_FALSE(scgi::manager::unix_peer_uid(-1));
}
