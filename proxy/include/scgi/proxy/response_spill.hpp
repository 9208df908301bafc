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
#include <span>
#include <string>
#include <system_error>

namespace scgi::proxy {

class SpillSpace {
 public:
  SpillSpace() = default;
  ~SpillSpace();
  SpillSpace(const SpillSpace&) = delete;
  SpillSpace& operator=(const SpillSpace&) = delete;

  // Uses `directory` for new files from now on, with `limit` bytes for all
  // files together; on failure (the folder cannot be opened, or is not a
  // folder) keeps the previous setting and says why in `error`.
  bool configure(const std::string& directory, std::uint64_t limit, std::string& error);

  // A new unnamed file open for reading and writing, or -1 with errno set.
  int create_file();
  // Takes `bytes` from the shared bound; false when that would pass it.
  bool reserve(std::uint64_t bytes);
  void release(std::uint64_t bytes);
  std::uint64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  const std::string& directory() const { return directory_; }

 private:
  std::mutex mutex_;  // guards directory_fd_ and directory_ against a reload
  int directory_fd_ = -1;
  std::string directory_;
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
