#include "worker_logs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "output_lines.hpp"
#include "scgi/log.hpp"

namespace scgi::manager {

WorkerLogs::WorkerLogs(std::string log_dir, std::uint64_t max_file_bytes, std::size_t kept_files,
                       int stderr_fd)
    : log_dir_(std::move(log_dir)),
      max_file_bytes_(max_file_bytes),
      kept_files_(kept_files),
      stderr_fd_(stderr_fd) {}

WorkerLogs::~WorkerLogs() {
  for (auto& [pool, file] : files_)
    if (file.fd >= 0) ::close(file.fd);
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

std::string WorkerLogs::path(std::string_view pool) const {
  if (log_dir_.empty()) return {};
  return (std::filesystem::path(log_dir_) / (std::string(pool) + ".log")).string();
}

void WorkerLogs::write(std::string_view pool, std::uint32_t worker, long pid, std::string_view text,
                       bool continued) {
  std::string tagged;
  if (const auto tags = tags_.find(ProcessKey(pool, worker, pid)); tags != tags_.end()) {
    for (const std::string& tag : tags->second)
      tagged += "[" + tag + "] ";
    tagged.append(text);
    text = tagged;
  }
  std::string line = format_output_line(utc_timestamp(), pool, worker, pid, text, continued);
  auto file = files_.find(pool);
  if (file == files_.end()) file = files_.try_emplace(std::string(pool)).first;
  if (log_dir_.empty()) {
    write_fully(stderr_fd_, line);
  } else {
    write_to_file(file->first, file->second, line);
  }

  line.pop_back();  // the newline: kept lines and subscribers get the line alone
  auto recent = recent_.find(pool);
  if (recent == recent_.end()) recent = recent_.try_emplace(std::string(pool)).first;
  recent->second.push_back({worker, line});
  if (recent->second.size() > kRecentLines) recent->second.pop_front();
  publish(file->first, worker, line);
}

void WorkerLogs::tag(std::string_view pool, std::uint32_t worker, long pid, std::string tag) {
  tags_[ProcessKey(pool, worker, pid)].push_back(std::move(tag));
}

void WorkerLogs::untag(std::string_view pool, std::uint32_t worker, long pid,
                       std::string_view tag) {
  const auto found = tags_.find(ProcessKey(pool, worker, pid));
  if (found == tags_.end()) return;
  std::erase(found->second, tag);
  if (found->second.empty()) tags_.erase(found);
}

void WorkerLogs::write_to_file(const std::string& pool, PoolFile& file, std::string_view line) {
  if (!file.failed && file.fd < 0) open_file(pool, file);
  if (!file.failed && !file.rotate_failed && file.size_bytes > 0 &&
      file.size_bytes + line.size() > max_file_bytes_)
    rotate(pool, file);
  if (file.failed) {
    write_fully(stderr_fd_, line);
    return;
  }
  // One write() with O_APPEND: the line lands whole at the end, even next to
  // another writer (logrotate's copytruncate). A short write is finished.
  std::string_view rest = line;
  while (!rest.empty()) {
    const ssize_t written = ::write(file.fd, rest.data(), rest.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      fail(pool, file, "cannot write to " + path(pool), errno);
      write_fully(stderr_fd_, line);
      return;
    }
    rest.remove_prefix(static_cast<std::size_t>(written));
  }
  file.size_bytes += line.size();
}

bool WorkerLogs::open_dir(const std::string& pool, PoolFile& file) {
  if (dir_fd_ >= 0) return true;
  std::error_code error;
  std::filesystem::create_directories(log_dir_, error);
  if (error) {
    fail(pool, file, "cannot create the directory " + log_dir_, error.value());
    return false;
  }
  dir_fd_ = ::open(log_dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd_ < 0) {
    fail(pool, file, "cannot open the directory " + log_dir_, errno);
    return false;
  }
  return true;
}

// The log folder may be writable by a worker's user: the file is opened
// relative to the folder, never through a symlink (O_NOFOLLOW), and only when
// it is a regular file with no other name (not a hard link to, say,
// /etc/shadow); O_NONBLOCK keeps a FIFO put there from blocking the manager.
bool WorkerLogs::open_file(const std::string& pool, PoolFile& file) {
  if (!open_dir(pool, file)) return false;
  const std::string file_path = path(pool);
  const std::string name = std::string(pool) + ".log";
  const int fd =
      ::openat(dir_fd_, name.c_str(),
               O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0640);
  if (fd < 0) {
    const int open_error = errno;
    fail(pool, file,
         open_error == ELOOP ? "not writing through the symbolic link " + file_path
                             : "cannot open " + file_path,
         open_error);
    return false;
  }
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    const int fstat_error = errno;
    ::close(fd);
    fail(pool, file, "cannot stat " + file_path, fstat_error);
    return false;
  }
  if (!S_ISREG(status.st_mode) || status.st_nlink != 1) {
    ::close(fd);
    fail(pool, file,
         "not writing to " + file_path + ": it is not a regular file with a single name", EPERM);
    return false;
  }
  file.fd = fd;
  file.size_bytes = static_cast<std::uint64_t>(status.st_size);
  return true;
}

// POOL.log.(K-1) → POOL.log.K, …, POOL.log → POOL.log.1, then a new POOL.log.
// Renames replace their target, so exactly kept_files_ old files remain. A
// rename that fails stops the chain (nothing is overwritten that was not
// moved on) and the current file keeps growing until reopen().
bool WorkerLogs::rotate(const std::string& pool, PoolFile& file) {
  // Names relative to the log folder: renames and removals never follow a link.
  const std::string base = pool + ".log";
  auto numbered = [&](std::size_t n) { return n == 0 ? base : base + "." + std::to_string(n); };
  ::close(file.fd);
  file.fd = -1;
  if (kept_files_ == 0) {
    if (::unlinkat(dir_fd_, base.c_str(), 0) != 0 && errno != ENOENT) {
      const int error = errno;
      log_error("worker output of pool {}: cannot remove {} to start it over: {}", pool, base,
                std::strerror(error));
      file.rotate_failed = true;
    }
    return open_file(pool, file);
  }
  for (std::size_t n = kept_files_; n > 0; --n) {
    const std::string from = numbered(n - 1);
    const std::string to = numbered(n);
    if (::renameat(dir_fd_, from.c_str(), dir_fd_, to.c_str()) != 0 && errno != ENOENT) {
      const int error = errno;
      log_error(
          "worker output of pool {}: cannot rotate {} to {}: {}; the file grows past {} "
          "bytes until SIGUSR1",
          pool, from, to, std::strerror(error), max_file_bytes_);
      file.rotate_failed = true;
      break;
    }
  }
  return open_file(pool, file);
}

void WorkerLogs::fail(const std::string& pool, PoolFile& file, std::string_view what, int error) {
  if (file.fd >= 0) ::close(file.fd);
  file.fd = -1;
  file.failed = true;
  // Once per failure: the flag holds every later line back from trying again.
  log_error(
      "worker output of pool {}: {}: {}; writing it to the manager's stderr until "
      "SIGUSR1 reopens the log files",
      pool, what, std::strerror(error));
}

void WorkerLogs::reopen() {
  for (auto& [pool, file] : files_) {
    if (file.fd >= 0) ::close(file.fd);
    file = PoolFile{};  // opened again by path on the pool's next line
  }
  if (dir_fd_ >= 0) ::close(dir_fd_);
  dir_fd_ = -1;
}

std::vector<std::string> WorkerLogs::recent(std::string_view pool,
                                            std::optional<std::uint32_t> worker,
                                            std::size_t lines) const {
  std::vector<std::string> out;
  const auto kept = recent_.find(pool);
  if (kept == recent_.end()) return out;
  for (auto it = kept->second.rbegin(); it != kept->second.rend() && out.size() < lines; ++it)
    if (!worker || it->worker == *worker) out.push_back(it->line);
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<WorkerLogs::RecentLine> WorkerLogs::kept_lines(std::string_view pool) const {
  const auto kept = recent_.find(pool);
  if (kept == recent_.end()) return {};
  return {kept->second.begin(), kept->second.end()};
}

void WorkerLogs::adopt_kept_lines(std::string_view pool, std::vector<RecentLine> lines) {
  if (lines.empty()) return;
  auto recent = recent_.find(pool);
  if (recent == recent_.end()) recent = recent_.try_emplace(std::string(pool)).first;
  std::deque<RecentLine>& kept = recent->second;
  kept.insert(kept.begin(), std::make_move_iterator(lines.begin()),
              std::make_move_iterator(lines.end()));
  while (kept.size() > kRecentLines)
    kept.pop_front();
}

std::uint64_t WorkerLogs::subscribe(std::string pool, std::optional<std::uint32_t> worker,
                                    Subscriber callback) {
  const std::uint64_t id = next_subscription_++;
  subscriptions_.emplace(id, Subscription{std::move(pool), worker, std::move(callback)});
  return id;
}

void WorkerLogs::unsubscribe(std::uint64_t id) {
  const auto found = subscriptions_.find(id);
  if (found == subscriptions_.end()) return;
  // A callback running now must not be destroyed under itself.
  if (publishing_ > 0) {
    found->second.removed = true;
  } else {
    subscriptions_.erase(found);
  }
}

void WorkerLogs::publish(const std::string& pool, std::uint32_t worker, const std::string& line) {
  if (subscriptions_.empty()) return;
  ++publishing_;
  // Subscribers added by a callback start with the next line. Map iterators
  // stay valid: inserts do not move entries and erasing waits for the round.
  const std::uint64_t last = next_subscription_ - 1;
  for (auto it = subscriptions_.begin(); it != subscriptions_.end() && it->first <= last; ++it) {
    const Subscription& subscription = it->second;
    if (subscription.removed || subscription.pool != pool) continue;
    if (subscription.worker && *subscription.worker != worker) continue;
    subscription.callback(line);
  }
  if (--publishing_ == 0)
    std::erase_if(subscriptions_, [](const auto& entry) { return entry.second.removed; });
}

}  // namespace scgi::manager
