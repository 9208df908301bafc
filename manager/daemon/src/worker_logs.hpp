// Where captured worker output goes: each line (already cut by OutputLines) is
// prefixed with its time, pool, worker and pid, written with one write() to
// the pool's file `log_dir/POOL.log` (rotated by size, reopened on SIGUSR1
// for logrotate) or, with no log_dir, to the manager's own stderr; the last
// lines of each pool stay in memory for `scgictl logs`, and subscribers see
// new lines as they come (`scgictl logs -f`).
//
// Threads: every call comes from the manager's control thread, subscribers
// are called on it too. There are no locks; do not share an instance.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace scgi::manager {

class WorkerLogs {
 public:
  static constexpr std::uint64_t kDefaultMaxFileBytes = 10 * 1024 * 1024;
  static constexpr std::size_t kDefaultKeptFiles = 5;  // POOL.log.1 … POOL.log.5
  static constexpr std::size_t kRecentLines = 1000;    // per pool, for recent()

  // log_dir "" sends lines to `stderr_fd`; else the directory is created when
  // missing. A file that would grow past max_file_bytes is rotated first
  // (POOL.log → POOL.log.1 → … → POOL.log.KEPT, the oldest dropped), so a
  // line is never split across files; a single longer line gets a file to
  // itself. kept_files 0 keeps none: the file starts over. `stderr_fd` is
  // also where lines go while a pool's file cannot be written.
  explicit WorkerLogs(std::string log_dir, std::uint64_t max_file_bytes = kDefaultMaxFileBytes,
                      std::size_t kept_files = kDefaultKeptFiles, int stderr_fd = STDERR_FILENO);
  ~WorkerLogs();
  WorkerLogs(const WorkerLogs&) = delete;
  WorkerLogs& operator=(const WorkerLogs&) = delete;

  // One line (or one piece of a long line, `continued`) from a worker: the
  // Sink of an OutputLines. `pool` is a validated pool name ([a-z0-9_-]+),
  // so it is safe as a file name.
  void write(std::string_view pool, std::uint32_t worker, long pid, std::string_view text,
             bool continued);

  // Up to the last `lines` lines of the pool (of one worker when given, found
  // among the pool's last kRecentLines), oldest first, as written but without
  // the newline.
  std::vector<std::string> recent(std::string_view pool, std::optional<std::uint32_t> worker,
                                  std::size_t lines) const;

  // Calls `callback` with every new line (without its newline) of the pool,
  // or of one worker, until unsubscribe(). A callback may unsubscribe itself
  // or others, and subscribe more (those see the next line on).
  using Subscriber = std::function<void(const std::string& line)>;
  std::uint64_t subscribe(std::string pool, std::optional<std::uint32_t> worker,
                          Subscriber callback);
  void unsubscribe(std::uint64_t id);

  // The next lines of the worker's process `pid` carry `tag` ("[slow request
  // 7] ...") until untag(): a slow request's output is told apart in the
  // pool's log. A process may carry several tags (several slow requests on it).
  void tag(std::string_view pool, std::uint32_t worker, long pid, std::string tag);
  void untag(std::string_view pool, std::uint32_t worker, long pid, std::string_view tag);

  // SIGUSR1: close every file and open it again by its path on the next line,
  // after logrotate moved it; a file that failed is tried again.
  void reopen();

  // The file a pool's lines go to ("" without log_dir).
  std::string path(std::string_view pool) const;

  // --- Upgrade: the kept lines go on in the next image. ---
  struct RecentLine {
    std::uint32_t worker;
    std::string line;  // without the newline
  };
  // The pool's last kRecentLines lines, oldest first.
  std::vector<RecentLine> kept_lines(std::string_view pool) const;
  // The previous image's kept lines, before any this one kept itself; past
  // kRecentLines the oldest are dropped.
  void adopt_kept_lines(std::string_view pool, std::vector<RecentLine> lines);

 private:
  struct PoolFile {
    int fd = -1;
    std::uint64_t size_bytes = 0;
    bool failed = false;         // open or write failed: lines go to stderr until reopen()
    bool rotate_failed = false;  // reported once; the file grows until reopen()
  };
  struct Subscription {
    std::string pool;
    std::optional<std::uint32_t> worker;
    Subscriber callback;
    bool removed = false;  // unsubscribed while being called: erased after the round
  };

  void write_to_file(const std::string& pool, PoolFile& file, std::string_view line);
  bool open_dir(const std::string& pool, PoolFile& file);
  bool open_file(const std::string& pool, PoolFile& file);
  bool rotate(const std::string& pool, PoolFile& file);
  void fail(const std::string& pool, PoolFile& file, std::string_view what, int error);
  void publish(const std::string& pool, std::uint32_t worker, const std::string& line);

  std::string log_dir_;
  int dir_fd_ = -1;  // log_dir_, opened on the first line and again after reopen()
  std::uint64_t max_file_bytes_;
  std::size_t kept_files_;
  int stderr_fd_;
  std::map<std::string, PoolFile, std::less<>> files_;
  std::map<std::string, std::deque<RecentLine>, std::less<>> recent_;
  std::map<std::uint64_t, Subscription> subscriptions_;
  std::uint64_t next_subscription_ = 1;
  int publishing_ = 0;  // depth of publish() calls on the stack
  using ProcessKey = std::tuple<std::string, std::uint32_t, long>;  // pool, worker, pid
  std::map<ProcessKey, std::vector<std::string>> tags_;
};

}  // namespace scgi::manager
