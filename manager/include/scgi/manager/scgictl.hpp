// scgictl: the command line that controls a running scgi-manager through its
// control socket (docs/control-protocol.md). Here rather than in its main so
// that tests run it in-process.
#pragma once

#include <ostream>

namespace scgi::manager {

// Exit codes (DESIGN.md): 0 done, 1 the manager reported the command failed,
// 2 usage errors, 3 the manager cannot be reached.
enum ScgictlExit : int { kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3 };

int scgictl_main(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace scgi::manager
