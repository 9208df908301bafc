// scgictl's signals: while one of these lives, the signals it was given
// (SIGINT, SIGTERM, ...) are not fatal but readable from a pipe, so that a
// blocking loop that polls the pipe ends cleanly (restores the terminal, exits
// 0) instead of being killed. The handler only writes the signal's number.
#pragma once

#include <csignal>
#include <initializer_list>
#include <map>
#include <vector>

namespace scgi::ctl {

class InterruptSignals {
 public:
  // Installs the handler for `signals`; the previous handlers come back on
  // destruction. One instance at a time (the pipe is process-wide).
  explicit InterruptSignals(std::initializer_list<int> signals = {SIGINT, SIGTERM});
  ~InterruptSignals();
  InterruptSignals(const InterruptSignals&) = delete;
  InterruptSignals& operator=(const InterruptSignals&) = delete;

  // Readable once a signal has arrived: poll() it beside the other fds.
  int fd() const { return pipe_[0]; }
  // The signals received since the last call, oldest first (empty if none).
  std::vector<int> take();

 private:
  int pipe_[2] = {-1, -1};
  std::map<int, struct sigaction> previous_;
};

}  // namespace scgi::ctl
