// What a worker is doing at one moment, from /proc and without ptrace (which
// containers often forbid): its scheduler state, the kernel function it waits
// in, its current system call, and its kernel stack where this process may
// read it (root with CAP_SYS_ADMIN). For the slow log.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace scgi::manager {

struct ProcessSnapshot {
  std::string state;    // "S (sleeping)"; "" when the process is gone
  std::string wchan;    // "hrtimer_nanosleep"; "-" when running
  std::string syscall;  // "clock_nanosleep (230)", "running", "none (in user space)"
  std::vector<std::string> kernel_stack;  // innermost first, without addresses
  std::string kernel_stack_error;         // why there is none: "not readable: ..."
};

ProcessSnapshot snapshot_process(pid_t pid);

// "clock_nanosleep (230)", "nanosleep (35)", or "syscall 999" for a number
// this table does not name.
std::string describe_syscall(long number);

}  // namespace scgi::manager
