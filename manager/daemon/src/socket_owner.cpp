#include "socket_owner.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace scgi::manager {
namespace {

constexpr std::string_view kListenState = "0A";  // TCP_LISTEN in /proc/net/tcp

// Local addresses, as /proc prints them (each 32-bit word in host order), on
// which a listener takes connections to 127.0.0.1.
bool takes_loopback_v4(std::string_view address) {
  return address == "0100007F" || address == "00000000";
}
bool takes_loopback_v6(std::string_view address) {
  return address == "00000000000000000000000000000000" ||
         address == "0000000000000000FFFF00000100007F";
}

// Rows: "sl local rem st tx:rx tr:when retrnsmt uid timeout inode …".
void collect(std::string_view table, bool v6, std::uint16_t port, std::vector<uid_t>& uids) {
  std::istringstream lines{std::string(table)};
  std::string line;
  std::getline(lines, line);  // the header
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state, queues, timer, retransmits;
    unsigned long uid = 0;
    if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid))
      continue;
    if (state != kListenState) continue;
    const std::size_t colon = local.find(':');
    if (colon == std::string::npos) continue;
    const std::string_view address = std::string_view(local).substr(0, colon);
    const unsigned long row_port = std::strtoul(local.c_str() + colon + 1, nullptr, 16);
    if (row_port != port) continue;
    if (v6 ? takes_loopback_v6(address) : takes_loopback_v4(address))
      uids.push_back(static_cast<uid_t>(uid));
  }
}

// May a listener on this address (network byte order, as sock_diag gives it)
// take connections to 127.0.0.1?
bool takes_loopback(int family, const __be32* address) {
  if (family == AF_INET) return address[0] == htonl(INADDR_LOOPBACK) || address[0] == 0;
  const bool any = address[0] == 0 && address[1] == 0 && address[2] == 0 && address[3] == 0;
  const bool mapped_loopback = address[0] == 0 && address[1] == 0 && address[2] == htonl(0xffff) &&
                               address[3] == htonl(INADDR_LOOPBACK);
  return any || mapped_loopback;
}

// The kernel's own list of listening TCP sockets (sock_diag): it walks only
// the listeners, where /proc/net/tcp prints every connection of the host.
Result<std::vector<uid_t>> listeners_by_sock_diag(std::uint16_t port) {
  using R = Result<std::vector<uid_t>>;
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return R::fail(std::string("sock_diag: ") + std::strerror(errno));
  const timeval limit{1, 0};  // the kernel answers at once; this only bounds a surprise
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::vector<uid_t> uids;
  for (const int family : {AF_INET, AF_INET6}) {
    struct {
      nlmsghdr header;
      inet_diag_req_v2 request;
    } message{};
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.request.sdiag_family = static_cast<__u8>(family);
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = 1u << 10;  // TCP_LISTEN
    if (::send(fd, &message, sizeof message, 0) != static_cast<ssize_t>(sizeof message)) {
      const int error = errno;
      ::close(fd);
      return R::fail(std::string("sock_diag: ") + std::strerror(error));
    }
    alignas(nlmsghdr) char buffer[16 * 1024];
    for (bool done = false; !done;) {
      const ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
      if (got <= 0) {
        const int error = got < 0 ? errno : EPROTO;
        ::close(fd);
        return R::fail(std::string("sock_diag: ") + std::strerror(error));
      }
      auto length = static_cast<unsigned>(got);
      for (auto* reply = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(reply, length);
           reply = NLMSG_NEXT(reply, length)) {
        if (reply->nlmsg_type == NLMSG_DONE) {
          done = true;
          break;
        }
        if (reply->nlmsg_type == NLMSG_ERROR) {
          ::close(fd);
          return R::fail("sock_diag: the kernel refused the request");
        }
        const auto* socket = static_cast<const inet_diag_msg*>(NLMSG_DATA(reply));
        if (ntohs(socket->id.idiag_sport) == port &&
            takes_loopback(socket->idiag_family, socket->id.idiag_src))
          uids.push_back(socket->idiag_uid);
      }
    }
  }
  ::close(fd);
  return R::ok(std::move(uids));
}

Result<std::string> read_whole(const char* path) {
  std::ifstream in(path);
  if (!in) return Result<std::string>::fail(std::string("cannot read ") + path);
  std::ostringstream text;
  text << in.rdbuf();
  return Result<std::string>::ok(text.str());
}

}  // namespace

Result<uid_t> unix_peer_uid(int connected_fd) {
  ucred credentials{};
  socklen_t length = sizeof credentials;
  if (::getsockopt(connected_fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0)
    return Result<uid_t>::fail(std::string("SO_PEERCRED: ") + std::strerror(errno));
  return Result<uid_t>::ok(credentials.uid);
}

std::vector<uid_t> loopback_listener_uids(std::string_view tcp, std::string_view tcp6,
                                          std::uint16_t port) {
  std::vector<uid_t> uids;
  collect(tcp, false, port, uids);
  collect(tcp6, true, port, uids);
  return uids;
}

Result<std::vector<uid_t>> loopback_listener_uids(std::uint16_t port) {
  using R = Result<std::vector<uid_t>>;
  // /proc/net/tcp only where netlink is not allowed (RestrictAddressFamilies=).
  if (auto listeners = listeners_by_sock_diag(port)) return listeners;
  auto tcp = read_whole("/proc/net/tcp");
  if (!tcp) return R::fail(tcp.error());
  auto tcp6 = read_whole("/proc/net/tcp6");  // absent without IPv6
  return R::ok(loopback_listener_uids(tcp.value(), tcp6 ? tcp6.value() : std::string(), port));
}

}  // namespace scgi::manager
