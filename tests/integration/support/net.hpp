// Loopback networking for integration tests: free ports, a blocking SCGI
// client with timeouts, and a listener that records what reaches it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "scgi/address.hpp"

namespace scgi::test {

using namespace std::chrono_literals;

// A TCP port on 127.0.0.1 that nothing listens on right now.
std::uint16_t free_port();
Address loopback(std::uint16_t port);

// True once `address` accepts a connection (polled until `timeout`).
bool wait_until_accepting(const Address& address, std::chrono::milliseconds timeout = 10s);

// A connected blocking socket; -1 on failure.
int connect_to(const Address& address);

struct Response {
  std::string bytes;         // everything received until the peer closed
  bool closed = false;       // the peer closed (vs. timeout or error)
  std::string error;         // what went wrong, if anything
  int status() const;        // the CGI status (ResponseHeadReader), 0 when no response
  std::string body() const;  // after the blank line
  std::string header(const std::string& name) const;  // first value, "" when absent
};

// Sends `request` (all of it) and reads until the server closes, under one deadline.
Response send_request(const Address& address, const std::string& request,
                      std::chrono::milliseconds timeout = 10s);
// The same, on a socket already connected.
Response send_request_on(int fd, const std::string& request, std::chrono::milliseconds timeout);
// Reads until close or timeout on a connected socket.
Response read_response(int fd, std::chrono::milliseconds timeout);

// True when the peer has closed (or reset) a connected socket; never blocks.
bool peer_closed(int fd);

// A valid GET with the usual CGI variables.
std::string get_request(const std::string& uri);

// Accepts connections on a free port and records how many arrived and every
// byte they sent, without answering (then closes). For "the backend never
// sees a byte" tests.
class RecordingServer {
 public:
  RecordingServer();
  ~RecordingServer();
  const Address& address() const { return address_; }
  int connections() const { return connections_.load(); }
  std::size_t bytes() const;

 private:
  Address address_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::string received_;
  std::thread thread_;
};

// Resident memory of a process in bytes (VmRSS), and its peak (VmHWM).
std::uint64_t resident_bytes(int pid);
std::uint64_t peak_resident_bytes(int pid);

}  // namespace scgi::test
