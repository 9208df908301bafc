#include "response_spill.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace scgi::proxy {
namespace {

std::error_code last_error() {
  return {errno, std::generic_category()};
}

// An unnamed file in the folder `directory_fd`: nobody can open it by a name,
// and the kernel frees it with its last descriptor.
// O_EXCL: it can never be given a name later (linkat) either.
int create_unnamed(int directory_fd) {
  return ::openat(directory_fd, ".", O_TMPFILE | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
}

}  // namespace

std::optional<SpillFolder> SpillFolder::open(const std::string& path, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    error = "spill_dir " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  SpillFolder folder(fd, path);
  const int probe = create_unnamed(fd);
  if (probe < 0) {
    error = "spill_dir " + path +
            ": cannot make an unnamed file there (O_TMPFILE): " + std::strerror(errno);
    return std::nullopt;
  }
  ::close(probe);
  return folder;
}

SpillFolder::SpillFolder(SpillFolder&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

SpillFolder& SpillFolder::operator=(SpillFolder&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

SpillFolder::~SpillFolder() {
  if (fd_ >= 0) ::close(fd_);
}

void SpillSpace::use(std::optional<SpillFolder> folder, std::uint64_t limit) {
  std::lock_guard lock(mutex_);
  folder_ = std::move(folder);
  limit_.store(folder_ ? limit : 0, std::memory_order_relaxed);
}

int SpillSpace::create_file() {
  std::lock_guard lock(mutex_);
  if (!folder_) {
    errno = ENOENT;
    return -1;
  }
  return create_unnamed(folder_->fd());
}

std::string SpillSpace::directory() const {
  std::lock_guard lock(mutex_);
  return folder_ ? folder_->path() : std::string();
}

bool SpillSpace::reserve(std::uint64_t bytes) {
  const std::uint64_t limit = limit_.load(std::memory_order_relaxed);
  std::uint64_t used = in_use_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit || used > limit - bytes) return false;
  } while (!in_use_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return true;
}

void SpillSpace::release(std::uint64_t bytes) {
  in_use_.fetch_sub(bytes, std::memory_order_relaxed);
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) ::close(fd_);
  space_.release(write_offset_ + prepared_);
}

std::error_code SpillFile::prepare(std::uint64_t bytes) {
  if (bytes > room()) return std::make_error_code(std::errc::file_too_large);
  if (bytes <= prepared_) return {};
  // The shared bound first: past it, not even a file is made.
  const std::uint64_t more = bytes - prepared_;
  if (!space_.reserve(more)) return std::make_error_code(std::errc::no_space_on_device);
  if (fd_ < 0) fd_ = space_.create_file();
  if (fd_ < 0) {
    const std::error_code error = last_error();
    space_.release(more);
    return error;
  }
  // Blocks allocated now cannot run out under the write that follows the read;
  // a file system that cannot promise that is not written to at all.
  const int failed =
      ::posix_fallocate(fd_, static_cast<off_t>(write_offset_), static_cast<off_t>(bytes));
  if (failed != 0) {
    space_.release(more);
    return {failed, std::generic_category()};
  }
  prepared_ = bytes;
  return {};
}

std::error_code SpillFile::append(std::span<const char> bytes) {
  if (bytes.size() > prepared_) return std::make_error_code(std::errc::file_too_large);
  std::size_t written = 0;
  std::error_code error;
  while (written < bytes.size()) {
    const ssize_t n = ::pwrite(fd_, bytes.data() + written, bytes.size() - written,
                               static_cast<off_t>(write_offset_ + written));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      error = n < 0 ? last_error() : std::make_error_code(std::errc::io_error);
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  write_offset_ += written;
  space_.release(prepared_ - written);
  prepared_ = 0;
  return error;
}

std::size_t SpillFile::take(const MutablePieces& into, std::error_code& error) {
  error.clear();
  std::array<iovec, 2> pieces{};
  int count = 0;
  std::uint64_t wanted = 0;
  for (const auto& piece : into) {
    const std::uint64_t size = std::min<std::uint64_t>(piece.size(), held() - wanted);
    if (size == 0) continue;
    pieces[count++] = {piece.data(), static_cast<std::size_t>(size)};
    wanted += size;
  }
  if (wanted == 0) return 0;
  ssize_t n;
  do {
    n = ::preadv(fd_, pieces.data(), count, static_cast<off_t>(read_offset_));
  } while (n < 0 && errno == EINTR);
  if (n <= 0) {
    // The bytes are held and cannot be read back: the response cannot go on whole.
    error = n < 0 ? last_error() : std::make_error_code(std::errc::io_error);
    return 0;
  }
  read_offset_ += static_cast<std::uint64_t>(n);
  // Caught up: start the file again from nothing and give its space back. If
  // it cannot be cut, it simply goes on growing, up to this response's limit.
  if (empty() && ::ftruncate(fd_, 0) == 0) {
    space_.release(write_offset_ + prepared_);
    read_offset_ = write_offset_ = prepared_ = 0;
  }
  return static_cast<std::size_t>(n);
}

}  // namespace scgi::proxy
