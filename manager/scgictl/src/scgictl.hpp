// scgictl: the command line that controls a running scgi-manager through its
// control socket (docs/control-protocol.md). Here rather than in its main so
// that tests run it in-process.
#pragma once

#include <ostream>

namespace scgi::ctl {

// Exit codes (docs/design.md, "scgictl"): 0 done, 1 the manager reported the
// command failed, 2 usage errors, 3 the manager cannot be reached (or refused
// the connection).
enum ScgictlExit : int { kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3 };

// What scgictl may do with the terminal it runs in.
struct Console {
  bool color = false;     // paint states: stdout is a terminal and NO_COLOR is not set
  int terminal_in = -1;   // stdin when it is a terminal (top reads keys), else -1
  int terminal_out = -1;  // stdout when it is a terminal (top draws), else -1
};

// The process's own: stdin and stdout, $NO_COLOR (set and not empty, per
// no-color.org) and TERM=dumb.
Console process_console();

// Without a console: no color, no terminal (what tests and pipes get).
int scgictl_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err,
                 const Console& console = {});

}  // namespace scgi::ctl
