// `scgictl status` for people: the pools and their workers as two aligned
// tables, with durations and sizes written the way a person reads them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scgi/control_protocol.hpp"

namespace scgi::manager {

// A table of every pool (name, listen, ready/target workers, queue, failing),
// then one of every worker (POOL:INDEX, pid, state, uptime, requests, in
// flight, RSS, CPU seconds, restarts, last exit). "-" stands for nothing.
std::string render_status(const std::vector<control::PoolStatus>& pools);

// "45s", "12m03s", "3h04m", "5d02h": two units at most, the larger first.
std::string format_uptime(double seconds);
// "512B", "12.5KiB", "45.2MiB", "1.50GiB": three significant digits.
std::string format_bytes(std::uint64_t bytes);

}  // namespace scgi::manager
