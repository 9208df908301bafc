#include "scgi/manager/socket_owner.hpp"

#include <sys/socket.h>

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
  auto tcp = read_whole("/proc/net/tcp");
  if (!tcp) return R::fail(tcp.error());
  auto tcp6 = read_whole("/proc/net/tcp6");  // absent without IPv6
  return R::ok(loopback_listener_uids(tcp.value(), tcp6 ? tcp6.value() : std::string(), port));
}

}  // namespace scgi::manager
