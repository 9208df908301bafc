#include "interrupt_signals.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace scgi::ctl {
namespace {

// The write end for the handler; -1 while no InterruptSignals lives.
volatile std::sig_atomic_t signal_pipe = -1;

extern "C" void on_signal(int number) {
  const int saved = errno;  // the interrupted code may be looking at errno
  const unsigned char byte = static_cast<unsigned char>(number);
  if (signal_pipe >= 0) (void)!::write(signal_pipe, &byte, 1);  // full: a wake-up is pending anyway
  errno = saved;
}

}  // namespace

InterruptSignals::InterruptSignals(std::initializer_list<int> signals) {
  if (signal_pipe >= 0) throw std::logic_error("InterruptSignals: one at a time");
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0)
    throw std::runtime_error(std::string("cannot create a pipe: ") + std::strerror(errno));
  signal_pipe = pipe_[1];
  for (const int number : signals) {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: a blocking call returns EINTR and the loop looks
    struct sigaction old {};
    if (::sigaction(number, &action, &old) == 0) previous_.emplace(number, old);
  }
}

InterruptSignals::~InterruptSignals() {
  for (const auto& [number, old] : previous_)
    ::sigaction(number, &old, nullptr);
  signal_pipe = -1;
  ::close(pipe_[0]);
  ::close(pipe_[1]);
}

std::vector<int> InterruptSignals::take() {
  std::vector<int> received;
  unsigned char bytes[64];
  for (;;) {
    const ssize_t got = ::read(pipe_[0], bytes, sizeof bytes);
    if (got > 0) {
      received.insert(received.end(), bytes, bytes + got);
      continue;
    }
    if (got < 0 && errno == EINTR) continue;
    return received;  // empty (EAGAIN) or the pipe broke: nothing more to read
  }
}

}  // namespace scgi::ctl
