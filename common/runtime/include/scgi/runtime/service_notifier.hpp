// What a daemon tells its service manager (systemd's Type=notify, through
// libsystemd's sd_notify): ready to serve, reloading, stopping, and one line
// of status for `systemctl status`. Each call is one datagram to
// $NOTIFY_SOCKET, and does nothing when that is unset (started by hand, in a
// container, under a test). $NOTIFY_SOCKET stays in the environment: later
// notifications, and a new program image exec'd in place, send to it again.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "scgi/config.hpp"
#include "scgi/units.hpp"

namespace scgi {

// READY=1: the daemon serves (its listeners accept, requests are answered).
// Also ends a reload, whatever its outcome.
void notify_ready(std::string_view status);
// RELOADING=1 with MONOTONIC_USEC (systemd 253 matches the reload's READY=1 to
// it; 252 ignores it); READY=1 must follow.
void notify_reloading(std::string_view status);
// STOPPING=1: the daemon has begun to stop (finishing the requests in flight).
void notify_stopping(std::string_view status);
// STATUS= alone: what `systemctl status` shows as "Status:".
void notify_status(std::string_view status);
// MAINPID=: the process systemd watches from now on.
void notify_main_pid(pid_t pid);

// The status lines both daemons give, from the configuration they run.
// "serving 2 pools, 6 workers"
std::string serving_status(const Config& running);
// "reload applied: serving …", or "reload rejected (see the log), the running
// configuration stays: serving …".
std::string reload_status(bool applied, const Config& running);
// "stopping: requests in flight finish within 30s"
std::string stopping_status(Milliseconds shutdown_timeout);

}  // namespace scgi
