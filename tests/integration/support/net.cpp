#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>

#include "scgi/request_writer.hpp"
#include "scgi/response_head.hpp"

namespace scgi::test {
namespace {

using Clock = std::chrono::steady_clock;

int milliseconds_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return static_cast<int>(std::max<std::int64_t>(left.count(), 0));
}

}  // namespace

// Ports are taken from below the kernel's ephemeral range (32768-60999 by
// default): a port from that range can be taken between our check and the
// server's bind by the local end of any client connection, and the tests make
// thousands of those.
std::uint16_t free_port() {
  static std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> range(20000, 32000);
  for (int attempt = 0; attempt < 200; ++attempt) {
    const auto port = static_cast<std::uint16_t>(range(random));
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (free) return port;
  }
  throw std::runtime_error("no free port between 20000 and 32000 on 127.0.0.1");
}

Address loopback(std::uint16_t port) {
  return Address{Address::Kind::tcp, "127.0.0.1", port, {}};
}

int connect_to(const Address& address) {
  if (address.is_unix()) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, address.path.c_str(), address.path.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    ::close(fd);
    return -1;
  }
  const bool v6 = address.host_is_ipv6();
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int ok = -1;
  if (v6) {
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(address.port);
    ::inet_pton(AF_INET6, address.host.c_str(), &addr.sin6_addr);
    ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(address.port);
    ::inet_pton(AF_INET, address.host.c_str(), &addr.sin_addr);
    ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  if (ok == 0) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }
  ::close(fd);
  return -1;
}

bool wait_until_accepting(const Address& address, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    const int fd = connect_to(address);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

int Response::status() const {
  if (bytes.empty()) return 0;
  ResponseHeadReader reader;
  reader.feed(bytes);
  reader.finish();
  return reader.status() == ResponseHeadReader::Status::complete ? reader.status_code() : 0;
}

std::string Response::body() const {
  auto end = bytes.find("\r\n\r\n");
  if (end != std::string::npos) return bytes.substr(end + 4);
  end = bytes.find("\n\n");
  return end == std::string::npos ? std::string() : bytes.substr(end + 2);
}

std::string Response::header(const std::string& name) const {
  const std::string key = name + ":";
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const auto eol = bytes.find('\n', pos);
    std::string line = bytes.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) break;
    if (line.compare(0, key.size(), key) == 0) {
      std::string value = line.substr(key.size());
      while (!value.empty() && value.front() == ' ')
        value.erase(0, 1);
      return value;
    }
    if (eol == std::string::npos) break;
    pos = eol + 1;
  }
  return {};
}

Response read_response(int fd, std::chrono::milliseconds timeout) {
  Response response;
  const auto deadline = Clock::now() + timeout;
  char buffer[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, milliseconds_left(deadline));
    if (ready == 0) {
      response.error = "timeout";
      return response;
    }
    if (ready < 0 && errno == EINTR) continue;
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) {
      response.closed = true;
      return response;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      response.error = std::strerror(errno);
      return response;
    }
    response.bytes.append(buffer, static_cast<std::size_t>(n));
  }
}

Response send_request_on(int fd, const std::string& request, std::chrono::milliseconds timeout) {
  std::size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      // The server may have answered early and closed: read what it said.
      break;
    }
    sent += static_cast<std::size_t>(n);
  }
  return read_response(fd, timeout);
}

Response send_request(const Address& address, const std::string& request,
                      std::chrono::milliseconds timeout) {
  const int fd = connect_to(address);
  if (fd < 0) {
    Response failed;
    failed.error = std::string("connect: ") + std::strerror(errno);
    return failed;
  }
  Response response = send_request_on(fd, request, timeout);
  ::close(fd);
  return response;
}

std::string get_request(const std::string& uri) {
  const auto question = uri.find('?');
  const std::string query = question == std::string::npos ? "" : uri.substr(question + 1);
  return make_request({{"REQUEST_METHOD", "GET"},
                       {"REQUEST_URI", uri},
                       {"QUERY_STRING", query},
                       {"SERVER_PROTOCOL", "HTTP/1.1"},
                       {"REMOTE_ADDR", "127.0.0.1"}});
}

bool peer_closed(int fd) {
  char byte;
  const ssize_t got = ::recv(fd, &byte, 1, MSG_DONTWAIT | MSG_PEEK);
  return got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

RecordingServer::RecordingServer() {
  const std::uint16_t port = free_port();
  address_ = loopback(port);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0)
    throw std::runtime_error("RecordingServer cannot listen");
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections_;
      Response got = read_response(fd, 200ms);
      {
        std::lock_guard lock(mutex_);
        received_ += got.bytes;
      }
      ::close(fd);
    }
  });
}

RecordingServer::~RecordingServer() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::size_t RecordingServer::bytes() const {
  std::lock_guard lock(mutex_);
  return received_.size();
}

namespace {

std::uint64_t status_field_kib(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

}  // namespace

std::uint64_t resident_bytes(int pid) {
  return status_field_kib(pid, "VmRSS");
}
std::uint64_t peak_resident_bytes(int pid) {
  return status_field_kib(pid, "VmHWM");
}

}  // namespace scgi::test
