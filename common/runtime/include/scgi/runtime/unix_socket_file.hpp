// A Unix socket file a daemon listens on (a Unix front door, scgi-manager's
// control socket), from the file an earlier process left behind to the
// removal of its own at the end. One set of rules for both daemons: a stale
// file is replaced, a live socket or a file that is not a socket is never
// touched, and the socket accepts nobody before it has its group and mode.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace scgi {

// Who may connect: the socket file's mode and group.
struct UnixSocketAccess {
  std::uint32_t mode = 0660;
  std::string group;  // "" = the daemon's own
  bool operator==(const UnixSocketAccess&) const = default;
};

// The words of the messages that differ between the daemons.
struct UnixSocketWording {
  // What a live socket at the path means: "another scgi-manager is running".
  std::string live_owner;
  // What the user may do instead of removing it: "set another [manager] control_socket".
  std::string other_path;
  // The setting that names the group: "control_group".
  std::string group_setting;
};

// The file a process bound, by device and inode: what it may remove at the end.
struct UnixSocketFileId {
  dev_t device = 0;
  ino_t inode = 0;
};

enum class StaleSocket {
  absent,   // nothing at the path
  removed,  // a socket nobody accepted on (its process died): unlinked
};

// Clears the way for a socket at `path`. A live socket (a connect succeeds,
// or its backlog is full: EAGAIN, the probe never blocks), a file that is not
// a socket, or a probe that cannot tell (any other errno) is left alone:
// nullopt, with `error` saying why and what to do.
std::optional<StaleSocket> clear_stale_unix_socket(const std::string& path,
                                                   const UnixSocketWording& wording,
                                                   std::string& error);

// Binds the Unix stream socket `fd` at `path`, the file born 0600 whatever the
// umask: until apply_unix_socket_access() and listen(), nobody else can
// connect. (The umask is the process's: a file another thread creates
// meanwhile is born narrower, never wider.) Returns 0 or bind's errno.
int bind_unix_socket_file(int fd, const std::string& path);

// Gives the socket file at `path` its group, then its mode (in that order, so
// the group bits never apply to the wrong group), after checking that it is
// still a socket. By path: the file was just bound by this process in a folder
// that only trusted users may change, and lchown does not follow links.
// Returns the file's identity, for remove_unix_socket_file().
std::optional<UnixSocketFileId> apply_unix_socket_access(const std::string& path,
                                                         const UnixSocketAccess& access,
                                                         const UnixSocketWording& wording,
                                                         std::string& error);

// Removes the file at `path` only if it is still the one this process bound:
// a newer process may have replaced a socket file this one lost.
void remove_unix_socket_file(const std::string& path, const UnixSocketFileId& id);

// The group `name` names; nullopt with `error` (naming `setting`) when there is none.
std::optional<gid_t> find_group(const std::string& name, const std::string& setting,
                                std::string& error);

}  // namespace scgi
