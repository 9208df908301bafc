#include "scgi/runtime/unix_socket_file.hpp"

#include <fmt/format.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace scgi {
namespace {

std::string errno_text(int error = errno) {
  return std::strerror(error);
}

// The address of `path`, or nullopt when it does not fit in sun_path.
std::optional<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un address{};
  if (path.size() >= sizeof address.sun_path) return std::nullopt;
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

}  // namespace

std::optional<StaleSocket> clear_stale_unix_socket(const std::string& path,
                                                   const UnixSocketWording& wording,
                                                   std::string& error) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return StaleSocket::absent;
  if (!S_ISSOCK(info.st_mode)) {
    error = path + " exists and is not a socket; remove it or " + wording.other_path;
    return std::nullopt;
  }
  const auto address = unix_address(path);
  if (!address) {
    error = "cannot tell whether " + path + " is in use: " + errno_text(ENAMETOOLONG);
    return std::nullopt;
  }
  // Non-blocking: a live process whose backlog is full answers EAGAIN at once.
  const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0) {
    error = "cannot create a socket: " + errno_text();
    return std::nullopt;
  }
  const int result =
      ::connect(probe, reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
  const int connect_error = errno;
  ::close(probe);
  if (result == 0 || connect_error == EAGAIN) {
    error = wording.live_owner + " on " + path + " (stop it first, or " + wording.other_path + ")";
    return std::nullopt;
  }
  if (connect_error == ENOENT) return StaleSocket::absent;  // removed meanwhile
  if (connect_error != ECONNREFUSED) {
    error = "cannot tell whether " + path + " is in use: " + errno_text(connect_error);
    return std::nullopt;
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    error = "cannot remove the stale socket " + path + ": " + errno_text();
    return std::nullopt;
  }
  return StaleSocket::removed;
}

int bind_unix_socket_file(int fd, const std::string& path) {
  const auto address = unix_address(path);
  if (!address) return ENAMETOOLONG;
  const mode_t old_umask = ::umask(0177);
  const int bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
  const int bind_error = errno;
  ::umask(old_umask);
  return bound == 0 ? 0 : bind_error;
}

std::optional<UnixSocketFileId> apply_unix_socket_access(const std::string& path,
                                                         const UnixSocketAccess& access,
                                                         const UnixSocketWording& wording,
                                                         std::string& error) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) {
    error = "cannot stat " + path + ": " + errno_text();
    return std::nullopt;
  }
  if (!S_ISSOCK(info.st_mode)) {
    error = path + " is no longer a socket: another process replaced it";
    return std::nullopt;
  }
  if (!access.group.empty()) {
    const auto group = find_group(access.group, wording.group_setting, error);
    if (!group) return std::nullopt;
    if (::lchown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
      const int chown_error = errno;
      error = fmt::format(
          "cannot give {} to {} {}: {}{}", path, wording.group_setting, access.group,
          errno_text(chown_error),
          chown_error == EPERM ? " (a daemon that is not root must be a member of the group)" : "");
      return std::nullopt;
    }
  }
  if (::chmod(path.c_str(), static_cast<mode_t>(access.mode)) != 0) {
    error = fmt::format("cannot make {} mode {:04o}: {}", path, access.mode, errno_text());
    return std::nullopt;
  }
  return UnixSocketFileId{info.st_dev, info.st_ino};
}

void remove_unix_socket_file(const std::string& path, const UnixSocketFileId& id) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0 && info.st_dev == id.device && info.st_ino == id.inode)
    ::unlink(path.c_str());
}

std::optional<gid_t> find_group(const std::string& name, const std::string& setting,
                                std::string& error) {
  std::vector<char> buffer(64 * 1024);
  group entry{};
  group* found = nullptr;
  const int result = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (result != 0) {
    error = "cannot look up " + setting + " \"" + name + "\": " + errno_text(result);
    return std::nullopt;
  }
  if (found == nullptr) {
    error = setting + " \"" + name + "\" is not a group on this system (see getent group)";
    return std::nullopt;
  }
  return entry.gr_gid;
}

}  // namespace scgi
