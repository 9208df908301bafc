#include "process_snapshot.hpp"

#include <fmt/format.h>
#include <sys/syscall.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace scgi::manager {
namespace {

constexpr std::size_t kMaxStackFrames = 32;

// The whole of a small /proc file; nullopt with `error` set when it cannot be read.
bool read_proc(pid_t pid, std::string_view name, std::string& out, std::string& error) {
  const std::string path = fmt::format("/proc/{}/{}", pid, name);
  std::ifstream in(path);
  if (!in) {
    error = std::strerror(errno);
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    error = std::strerror(errno);
    return false;
  }
  out = text.str();
  return true;
}

std::string_view state_word(char state) {
  switch (state) {
    case 'R':
      return "running";
    case 'S':
      return "sleeping";
    case 'D':
      return "disk sleep";
    case 'T':
      return "stopped";
    case 't':
      return "tracing stop";
    case 'Z':
      return "zombie";
    case 'X':
      return "dead";
    case 'I':
      return "idle";
    default:
      return "unknown";
  }
}

struct SyscallName {
  long number;
  std::string_view name;
};

// The calls a request usually waits in; numbers from this architecture's headers.
constexpr SyscallName kSyscalls[] = {
    {SYS_read, "read"},
    {SYS_write, "write"},
    {SYS_openat, "openat"},
    {SYS_close, "close"},
    {SYS_ppoll, "ppoll"},
    {SYS_pselect6, "pselect6"},
    {SYS_epoll_pwait, "epoll_pwait"},
    {SYS_nanosleep, "nanosleep"},
    {SYS_clock_nanosleep, "clock_nanosleep"},
    {SYS_connect, "connect"},
    {SYS_accept4, "accept4"},
    {SYS_sendto, "sendto"},
    {SYS_recvfrom, "recvfrom"},
    {SYS_sendmsg, "sendmsg"},
    {SYS_recvmsg, "recvmsg"},
    {SYS_wait4, "wait4"},
    {SYS_futex, "futex"},
    {SYS_flock, "flock"},
    {SYS_fsync, "fsync"},
    {SYS_fdatasync, "fdatasync"},
    {SYS_readv, "readv"},
    {SYS_writev, "writev"},
    {SYS_pread64, "pread64"},
    {SYS_pwrite64, "pwrite64"},
    {SYS_rt_sigtimedwait, "rt_sigtimedwait"},
#ifdef SYS_poll
    {SYS_poll, "poll"},
#endif
#ifdef SYS_select
    {SYS_select, "select"},
#endif
#ifdef SYS_epoll_wait
    {SYS_epoll_wait, "epoll_wait"},
#endif
#ifdef SYS_accept
    {SYS_accept, "accept"},
#endif
#ifdef SYS_pause
    {SYS_pause, "pause"},
#endif
};

// /proc/PID/stack lines are "[<0>] do_sys_poll+0x2b1/0x4d0": the function alone.
std::string stack_frame(std::string_view line) {
  if (const auto end = line.find("] "); end != std::string_view::npos) line.remove_prefix(end + 2);
  if (const auto plus = line.find('+'); plus != std::string_view::npos) line = line.substr(0, plus);
  return std::string(line);
}

}  // namespace

std::string describe_syscall(long number) {
  for (const SyscallName& call : kSyscalls)
    if (call.number == number) return fmt::format("{} ({})", call.name, number);
  return fmt::format("syscall {}", number);
}

ProcessSnapshot snapshot_process(pid_t pid) {
  ProcessSnapshot snapshot;
  std::string text;
  std::string error;
  // The state follows the command name, which may hold spaces and ')'.
  if (!read_proc(pid, "stat", text, error)) return snapshot;
  if (const auto close = text.rfind(')'); close != std::string::npos && close + 2 < text.size())
    snapshot.state = fmt::format("{} ({})", text[close + 2], state_word(text[close + 2]));

  if (read_proc(pid, "wchan", text, error))
    snapshot.wchan = text.empty() || text == "0" ? "-" : text;

  // "230 0x1 0x7ffc... sp pc" in a call, "-1 sp pc" in user space, or "running".
  if (read_proc(pid, "syscall", text, error)) {
    const std::string first = text.substr(0, text.find_first_of(" \n"));
    if (first == "running") {
      snapshot.syscall = "running";
    } else if (first == "-1") {
      snapshot.syscall = "none (in user space)";
    } else {
      try {
        snapshot.syscall = describe_syscall(std::stol(first));
      } catch (const std::exception&) {
        snapshot.syscall = first;
      }
    }
  } else {
    snapshot.syscall = "not readable: " + error;
  }

  // Without CAP_SYS_ADMIN the file opens, and its read fails or gives nothing.
  std::string stack;
  if (!read_proc(pid, "stack", stack, error)) {
    snapshot.kernel_stack_error = "not readable: " + error;
  } else if (stack.empty()) {
    snapshot.kernel_stack_error = "not readable without CAP_SYS_ADMIN (root reads it)";
  } else {
    std::istringstream lines(stack);
    for (std::string line;
         std::getline(lines, line) && snapshot.kernel_stack.size() < kMaxStackFrames;)
      if (!line.empty()) snapshot.kernel_stack.push_back(stack_frame(line));
  }
  return snapshot;
}

}  // namespace scgi::manager
