// The optional per-request log (`access_log` in [proxy]): one line per
// request, written with a single write() so threads never interleave lines.
//
// Format (space-separated key=value, values without spaces; "-" when unknown):
//   2026-11-24T20:10:28.123Z pool=app backend=127.0.0.1:5001 status=200
//   in=532 out=10240 queue_ms=0.000 total_ms=1.234
//   trace=4bf92f3577b34da6a3ce929d0e0e4736 method=GET uri=/path?q=1
// `in`/`out` count bytes from and to the client; `queue_ms` is the time spent
// waiting for a free backend; status 499 means the client left first.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scgi::proxy {

struct AccessRecord {
  std::string_view pool;
  std::string_view backend;  // empty: the request never reached one
  int status = 0;
  std::string_view outcome;  // kOutcomes: served, or what went wrong first
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  double queue_ms = 0;
  double total_ms = 0;
  std::string_view trace_id;  // the W3C trace id, "" when the request has none
  std::string_view method;
  std::string_view uri;
};

class AccessLog {
 public:
  AccessLog() = default;  // off
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // A target opened while a configuration is checked and used only once the
  // whole of it is accepted; closed if it never is (a rejected reload keeps
  // logging where it did).
  class Prepared {
   public:
    Prepared(std::string target, int fd, bool owned)
        : target_(std::move(target)), fd_(fd), owned_(owned) {}
    Prepared(Prepared&& other) noexcept
        : target_(std::move(other.target_)),
          fd_(std::exchange(other.fd_, -1)),
          owned_(other.owned_) {}
    Prepared& operator=(Prepared&&) = delete;
    ~Prepared() {
      if (owned_ && fd_ >= 0) ::close(fd_);
    }

   private:
    friend class AccessLog;
    std::string target_;
    int fd_;
    bool owned_;  // a file opened for it (not stderr, not the current one)
  };
  // "" = off, "-" = stderr, else a file opened for appending (created 0640).
  std::optional<Prepared> prepare(const std::string& target, std::string& error) const;
  // May be called while requests are logged (reload): lines go to the old
  // target or the new one, never nowhere. Not thread-safe with itself.
  void use(Prepared prepared);
  // After logrotate moved the file: the same target, a fresh file.
  bool reopen(std::string& error);

  bool enabled() const { return fd_.load(std::memory_order_relaxed) >= 0; }
  void write(const AccessRecord& record) const;

 private:
  std::string target_;
  std::atomic<int> fd_{-1};
  // Descriptors this log opened; closed only at destruction, so a writer that
  // read an old fd_ never writes to a closed or reused descriptor.
  std::vector<int> owned_;
};

// Values go into the line as they are, except spaces, control bytes, '%' and
// bytes that are not valid UTF-8, which become %XX: a line always splits into
// its fields, and a value can neither forge a line nor reach a terminal raw
// (the daemon's own log does the same with quote_for_log()).
std::string escape_log_value(std::string_view value);

}  // namespace scgi::proxy
