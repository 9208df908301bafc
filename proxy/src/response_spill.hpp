// Holding on disk the part of a response that a slow client has not read yet,
// past response_buffer, so that a backend is freed as soon as it is done
// however slowly its client reads (nginx's proxy temp files).
//
// SpillSpace is the process's: the folder, opened once per configuration, and
// the bound on what all spill files hold together, so that no client can fill
// the disk. SpillFile is one response's: a first-in, first-out queue of bytes
// in an unnamed file (O_TMPFILE) that vanishes when it is closed, even if the
// process is killed. Files are written and read on the event-loop thread: they
// go to and come from the page cache, at a rate no client can raise.
#pragma once

#include <asio/buffer.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <utility>

namespace scgi::proxy {

// The folder spill files are made in, open, and tried: an unnamed file was
// made there and dropped, so a folder that cannot hold one (missing,
// read-only, a file system without O_TMPFILE) is refused when it is named,
// at start or reload, not found out under load.
class SpillFolder {
 public:
  static std::optional<SpillFolder> open(const std::string& path, std::string& error);
  SpillFolder(SpillFolder&& other) noexcept;
  SpillFolder& operator=(SpillFolder&& other) noexcept;
  ~SpillFolder();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

 private:
  SpillFolder(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

class SpillSpace {
 public:
  // From now on new files go to `folder`, with `limit` bytes for all files
  // together; no folder (or a limit of 0) = nothing is spilled. Files already
  // open stay where they are.
  void use(std::optional<SpillFolder> folder, std::uint64_t limit);

  // A new unnamed file open for reading and writing, or -1 with errno set.
  int create_file();
  // Takes `bytes` from the shared bound; false when that would pass it.
  bool reserve(std::uint64_t bytes);
  void release(std::uint64_t bytes);
  std::uint64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  std::string directory() const;

 private:
  mutable std::mutex mutex_;  // guards folder_ against a reload
  std::optional<SpillFolder> folder_;
  std::atomic<std::uint64_t> limit_{0};
  std::atomic<std::uint64_t> in_use_{0};
};

class SpillFile {
 public:
  using MutablePieces = std::array<asio::mutable_buffer, 2>;

  // At most `limit` bytes on disk at once for this response.
  SpillFile(SpillSpace& space, std::uint64_t limit) : space_(space), limit_(limit) {}
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  bool empty() const { return read_offset_ == write_offset_; }
  std::uint64_t held() const { return write_offset_ - read_offset_; }
  // How many more bytes the file may take; 0 once it holds `limit` (it is
  // emptied, and starts again from 0, when its reader catches up).
  std::uint64_t room() const { return limit_ - write_offset_; }

  // Makes sure the next `bytes` (at most room()) can be appended: the file is
  // made, the shared bound taken and the disk blocks allocated, so that bytes
  // read from a backend are never in hand with nowhere to go. ENOSPC when the
  // shared bound or the disk is full, else the failing call's errno.
  std::error_code prepare(std::uint64_t bytes);
  // Adds `bytes` (at most what was prepared) at the end; what was prepared and
  // not used is given back. Fails only on an I/O error of the disk.
  std::error_code append(std::span<const char> bytes);
  // Moves the oldest bytes held into `into`, as many as fit; returns how many.
  std::size_t take(const MutablePieces& into, std::error_code& error);

 private:
  SpillSpace& space_;
  const std::uint64_t limit_;
  int fd_ = -1;
  std::uint64_t read_offset_ = 0;
  std::uint64_t write_offset_ = 0;
  std::uint64_t prepared_ = 0;  // past write_offset_; the two make what space_ lent
};

}  // namespace scgi::proxy
