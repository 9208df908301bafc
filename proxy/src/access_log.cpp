#include "access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "scgi/log.hpp"

namespace scgi::proxy {

AccessLog::~AccessLog() {
  for (const int fd : owned_)
    ::close(fd);
}

namespace {

int open_for_append(const std::string& path, std::string& error) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) error = "cannot open access log " + path + ": " + std::strerror(errno);
  return fd;
}

}  // namespace

std::optional<AccessLog::Prepared> AccessLog::prepare(const std::string& target,
                                                      std::string& error) const {
  if (target == target_ && (target.empty() || enabled()))
    return Prepared(target, fd_.load(std::memory_order_relaxed), false);  // unchanged
  if (target.empty()) return Prepared(target, -1, false);
  if (target == "-") return Prepared(target, STDERR_FILENO, false);
  const int fd = open_for_append(target, error);
  if (fd < 0) return std::nullopt;
  return Prepared(target, fd, true);
}

void AccessLog::use(Prepared prepared) {
  const int fd = prepared.fd_;
  if (prepared.owned_) {
    owned_.push_back(fd);  // the log's now, closed only at destruction
    prepared.fd_ = -1;
  }
  target_ = prepared.target_;
  fd_.store(fd, std::memory_order_relaxed);
}

bool AccessLog::reopen(std::string& error) {
  const int current = fd_.load(std::memory_order_relaxed);
  if (target_.empty() || target_ == "-" || current < 0) return true;
  const int fresh = open_for_append(target_, error);
  if (fresh < 0) return false;
  // dup3 swaps the file behind the descriptor atomically: a writer on another
  // thread writes to the old file or the new one, never to a closed descriptor.
  const int result = ::dup3(fresh, current, O_CLOEXEC);
  ::close(fresh);
  if (result < 0) {
    error = "cannot reopen access log " + target_ + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

std::string escape_log_value(std::string_view value) {
  if (value.empty()) return "-";
  std::string out;
  out.reserve(value.size());
  while (!value.empty()) {
    // Valid UTF-8 stays readable; the bytes of anything else are escaped.
    const std::size_t valid = utf8_sequence_length(value);
    if (valid > 1 && !is_c1_control(value)) {
      out.append(value.substr(0, valid));
      value.remove_prefix(valid);
      continue;
    }
    const auto byte = static_cast<unsigned char>(value.front());
    if (byte <= 0x20 || byte >= 0x7f || byte == '%') {
      out += fmt::format("%{:02X}", byte);
    } else {
      out += value.front();
    }
    value.remove_prefix(1);
  }
  return out;
}

void AccessLog::write(const AccessRecord& r) const {
  const int fd = fd_.load(std::memory_order_relaxed);
  if (fd < 0) return;
  const std::string line = fmt::format(
      "{} pool={} backend={} status={} outcome={} in={} out={} queue_ms={:.3f} total_ms={:.3f} "
      "trace={} method={} uri={}\n",
      utc_timestamp(), r.pool, r.backend.empty() ? "-" : r.backend, r.status, r.outcome, r.bytes_in,
      r.bytes_out, r.queue_ms, r.total_ms, r.trace_id.empty() ? "-" : r.trace_id,
      escape_log_value(r.method), escape_log_value(r.uri));
  write_fully(fd, line);
}

}  // namespace scgi::proxy
