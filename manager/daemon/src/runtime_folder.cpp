#include "runtime_folder.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "scgi/log.hpp"

namespace scgi::manager {

Result<RuntimeFolder> RuntimeFolder::create() {
  using R = Result<RuntimeFolder>;
  const char* base = std::getenv("RUNTIME_DIRECTORY");
  const std::string parent = base && *base ? base : "/tmp";
  std::string pattern = parent + "/scgi-manager.XXXXXX";
  // 0711, not 0700, so that workers running as another user can reach their
  // pool's folder (which is then theirs) without listing the others.
  if (::mkdtemp(pattern.data()) == nullptr || ::chmod(pattern.c_str(), 0711) != 0)
    return R::fail("cannot create a runtime folder " + pattern + ": " + std::strerror(errno));
  const int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent_fd < 0) {
    const std::string error = std::strerror(errno);
    ::rmdir(pattern.c_str());
    return R::fail("cannot open " + parent + ": " + error);
  }
  return R::ok(RuntimeFolder(std::move(pattern), parent_fd));
}

Result<RuntimeFolder> RuntimeFolder::adopt(std::string path) {
  using R = Result<RuntimeFolder>;
  const auto slash = path.rfind('/');
  if (slash == std::string::npos || slash + 1 == path.size())
    return R::fail("the handed runtime folder '" + path + "' is not an absolute path");
  const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
  const int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent_fd < 0) return R::fail("cannot open " + parent + ": " + std::strerror(errno));
  return R::ok(RuntimeFolder(std::move(path), parent_fd));
}

RuntimeFolder::RuntimeFolder(RuntimeFolder&& other) noexcept
    : path_(std::move(other.path_)), parent_fd_(std::exchange(other.parent_fd_, -1)) {}

RuntimeFolder::~RuntimeFolder() {
  if (parent_fd_ < 0) return;
  const std::string name = path_.substr(path_.rfind('/') + 1);
  if (!remove_tree_at(parent_fd_, name))
    log_warn("cannot remove all of the runtime folder {}: {}", path_, std::strerror(errno));
  ::close(parent_fd_);
}

bool remove_tree_at(int folder_fd, const std::string& name, int max_depth) {
  // unlinkat without AT_REMOVEDIR removes what the name is (a link, a socket,
  // a file) and refuses a folder with EISDIR.
  if (::unlinkat(folder_fd, name.c_str(), 0) == 0 || errno == ENOENT) return true;
  if (errno != EISDIR || max_depth <= 0) return false;
  const int fd = ::openat(folder_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    // Made a link or a file meanwhile: remove that, without following it.
    if (errno == ELOOP || errno == ENOTDIR) return ::unlinkat(folder_fd, name.c_str(), 0) == 0;
    return errno == ENOENT;
  }
  DIR* folder = ::fdopendir(fd);
  if (folder == nullptr) {
    ::close(fd);
    return false;
  }
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(folder)) {
    const std::string entry_name = entry->d_name;
    if (entry_name != "." && entry_name != "..") names.push_back(entry_name);
  }
  bool complete = true;
  for (const std::string& entry_name : names)
    complete = remove_tree_at(::dirfd(folder), entry_name, max_depth - 1) && complete;
  ::closedir(folder);
  if (::unlinkat(folder_fd, name.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return complete;
  // Exchanged for a link or a file after it was emptied: remove that, unfollowed.
  if (errno == ENOTDIR) return ::unlinkat(folder_fd, name.c_str(), 0) == 0 && complete;
  return false;
}

}  // namespace scgi::manager
