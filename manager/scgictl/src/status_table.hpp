// `scgictl status` and `scgictl top` for people: the pools and their workers
// as aligned tables, with durations, sizes and rates written the way a person
// reads them, and states in color on a terminal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "scgi/control_protocol.hpp"

namespace scgi::ctl {

struct StatusLook {
  bool color = false;    // ANSI colors: states, bold headers
  bool latency = false;  // top: pool columns P50, P99 and REQUESTS instead of LISTEN
};

// A table of every pool (name, state, ready/total workers, in flight, queue,
// request rate, listen), then one of every worker (POOL:INDEX, pid, state,
// uptime, requests, in flight, RSS, CPU seconds, restarts, last exit). "-"
// stands for nothing.
std::string render_status(const std::vector<control::PoolStatus>& pools, StatusLook look = {});

// The pool's state as the manager reports it; from an older manager, which
// sends none, worked out from `failing` and the ready workers.
std::string pool_state(const control::PoolStatus& pool);

// The SGR code that paints a state ("32" green for ready/running, "33" yellow
// for starting/draining/stopping/degraded, "31" red for backoff/failing, "2"
// dim for stopped), "" for anything else.
std::string_view state_color(std::string_view state);
// `text` in that SGR code, reset after; `text` itself when the code is "".
std::string paint(std::string_view text, std::string_view code);
// The first `columns` visible characters of a line that may hold SGR codes
// (colors stay balanced: a cut line ends with a reset).
std::string clip_line(std::string_view line, std::size_t columns);

// "45s", "12m03s", "3h04m", "5d02h": two units at most, the larger first.
std::string format_uptime(double seconds);
// "512B", "12.5KiB", "45.2MiB", "1.50GiB": three significant digits.
std::string format_bytes(std::uint64_t bytes);
// Requests per second: "0", "0.4", "12.3", "1234".
std::string format_rate(double per_second);
// A latency: "-" (none measured), "0.35ms", "12.3ms", "250ms", "1.20s".
std::string format_latency(double seconds);

}  // namespace scgi::ctl
