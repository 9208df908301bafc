// `scgictl top`: a live view of the pools and their workers, redrawn every
// second in the terminal's alternate screen until `q` (or Ctrl-C, SIGTERM).
// Dependency-free: termios for the keys, ANSI escapes for the screen, poll()
// for the wait. Whatever way it ends, the terminal is left as it was found.
#pragma once

#include <chrono>
#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

#include "scgi/control_protocol.hpp"

namespace scgi::ctl {

struct TopSettings {
  std::string socket;
  bool color = false;
  int terminal_in = -1;   // stdin when it is a terminal (keys), else -1
  int terminal_out = -1;  // stdout when it is a terminal (its size), else -1
  std::chrono::milliseconds interval{1000};
};

// Escapes that enter the view (alternate screen, cursor hidden) and leave it
// (cursor shown, main screen back).
inline constexpr std::string_view kEnterScreen = "\x1b[?1049h\x1b[?25l";
inline constexpr std::string_view kLeaveScreen = "\x1b[?25h\x1b[?1049l";

// One frame as written to the terminal: cursor home, `title`, `problem` (a
// line in red when not empty), the status tables with latency, each line
// clipped to `columns` and cleared to its end, at most `rows` lines, the rest
// of the screen cleared.
std::string render_top_frame(const std::vector<control::PoolStatus>& pools,
                             const std::string& title, const std::string& problem,
                             std::size_t columns, std::size_t rows, bool color);

// The live view; exit codes as scgictl's: 0 quit, 2 not a terminal, 3 the
// manager cannot be reached at the start (later losses are shown, and retried).
int run_top(const TopSettings& settings, std::ostream& out, std::ostream& err);

// `scgictl --json top`: no terminal needed; one status object per line
// ({"ok":true,"pools":[...]}), every `interval`, until SIGINT or SIGTERM (exit 0).
int run_top_json(const TopSettings& settings, std::ostream& out, std::ostream& err);

}  // namespace scgi::ctl
