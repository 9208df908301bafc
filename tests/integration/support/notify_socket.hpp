// Stands in for systemd's notification socket: a Unix datagram socket in a
// test's folder, given to the daemon under test as $NOTIFY_SOCKET. Each
// datagram is one notification ("READY=1\nSTATUS=serving 1 pool").
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "harness.hpp"

namespace scgi::test {

// One notification, its fields by name: {"READY": "1", "STATUS": "…"}.
struct Notification {
  std::map<std::string, std::string> fields;
  bool has(const std::string& name, const std::string& value) const;
  std::string field(const std::string& name) const;  // "" when absent
  std::string text() const;                          // as sent, for assertion messages
};

class NotifySocket {
 public:
  explicit NotifySocket(const TempDir& dir);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }
  // The environment that points a daemon at this socket.
  std::map<std::string, std::string> env() const { return {{"NOTIFY_SOCKET", path_}}; }
  // The next notification in the order sent; nullopt if none arrives within `timeout`.
  std::optional<Notification> next(std::chrono::milliseconds timeout = 10s);

 private:
  std::string path_;
  int fd_ = -1;
};

// CLOCK_MONOTONIC in microseconds, the clock of MONOTONIC_USEC.
std::uint64_t monotonic_usec();

}  // namespace scgi::test
