#include "scgi/runtime/service_notifier.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstring>
#include <ctime>

#include "scgi/log.hpp"

namespace scgi {
namespace {

// One field per line in a notification: a line break inside the status would
// start a field of its own.
std::string one_line(std::string_view text) {
  std::string line(text);
  std::replace(line.begin(), line.end(), '\n', ' ');
  return line;
}

void send(const std::string& fields) {
  // 0 without $NOTIFY_SOCKET; negative errno when it is set but the send fails.
  const int sent = ::sd_notify(0, fields.c_str());
  if (sent < 0)
    log_warn("cannot notify the service manager ({}): {}", fields.substr(0, fields.find('\n')),
             std::strerror(-sent));
}

unsigned long long monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<unsigned long long>(now.tv_sec) * 1'000'000ULL +
         static_cast<unsigned long long>(now.tv_nsec) / 1'000ULL;
}

}  // namespace

void notify_ready(std::string_view status) {
  send("READY=1\nSTATUS=" + one_line(status));
}

void notify_reloading(std::string_view status) {
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()) +
       "\nSTATUS=" + one_line(status));
}

void notify_stopping(std::string_view status) {
  send("STOPPING=1\nSTATUS=" + one_line(status));
}

void notify_status(std::string_view status) {
  send("STATUS=" + one_line(status));
}

void notify_main_pid(pid_t pid) {
  send("MAINPID=" + std::to_string(pid));
}

std::string serving_status(const Config& running) {
  return "serving " + count_pools_and_workers(running);
}

std::string reload_status(bool applied, const Config& running) {
  if (applied) return "reload applied: " + serving_status(running);
  return "reload rejected (see the log), the running configuration stays: " +
         serving_status(running);
}

std::string stopping_status(Milliseconds shutdown_timeout) {
  return "stopping: requests in flight finish within " + format_duration(shutdown_timeout);
}

}  // namespace scgi
