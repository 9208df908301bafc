// The manager's runtime folder: the workers' Unix sockets, one folder per pool
// inside. Made at start and removed at exit, without following anything a
// worker may have put in its pool's folder (that folder can be its user's).
#pragma once

#include <string>

#include "scgi/result.hpp"

namespace scgi::manager {

class RuntimeFolder {
 public:
  // $RUNTIME_DIRECTORY/scgi-manager.XXXXXX under systemd, else in /tmp.
  static Result<RuntimeFolder> create();
  // An upgrade's: the folder the previous image made, with the workers' sockets in it.
  static Result<RuntimeFolder> adopt(std::string path);
  RuntimeFolder(RuntimeFolder&& other) noexcept;
  RuntimeFolder& operator=(RuntimeFolder&&) = delete;
  RuntimeFolder(const RuntimeFolder&) = delete;
  ~RuntimeFolder();  // removes it with all it holds

  const std::string& path() const { return path_; }

 private:
  RuntimeFolder(std::string path, int parent_fd) : path_(std::move(path)), parent_fd_(parent_fd) {}

  std::string path_;
  int parent_fd_ = -1;  // the folder that holds it
};

// Removes `name` in the folder `folder_fd` with everything below it: every
// step relative to a descriptor, a symlink removed as a link and never
// followed, at most `max_depth` folders deep. False when something stayed.
bool remove_tree_at(int folder_fd, const std::string& name, int max_depth = 32);

}  // namespace scgi::manager
