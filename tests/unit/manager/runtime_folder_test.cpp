// The runtime folder goes at exit with what workers left in it, and nothing
// outside it: links are removed as links, never followed.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runtime_folder.hpp"

namespace fs = std::filesystem;

TEST_CASE("removing a tree removes links as links and keeps what they point to",
          "[manager][runtime]") {
  const fs::path top = fs::temp_directory_path() / ("scgi-tree-" + std::to_string(::getpid()));
  fs::remove_all(top);
  fs::create_directories(top / "outside" / "keep");
  std::ofstream(top / "outside" / "keep" / "file") << "precious";
  const fs::path tree = top / "tree";
  fs::create_directories(tree / "pool" / "deep" / "er");
  std::ofstream(tree / "pool" / "deep" / "er" / "x") << "x";
  fs::create_directory_symlink(top / "outside", tree / "pool" / "to-outside");
  fs::create_directory_symlink(top / "outside" / "keep", tree / "pool" / "deep" / "link");
  fs::create_symlink(top / "outside" / "keep" / "file", tree / "file-link");

  const int fd = ::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  CHECK(scgi::manager::remove_tree_at(fd, "tree"));
  CHECK_FALSE(fs::exists(fs::symlink_status(tree)));
  CHECK(fs::exists(top / "outside" / "keep" / "file"));

  // Deeper than allowed: what is below stays, and the answer says so.
  fs::create_directories(tree / "a" / "b" / "c");
  CHECK_FALSE(scgi::manager::remove_tree_at(fd, "tree", 1));
  CHECK(scgi::manager::remove_tree_at(fd, "tree"));
  CHECK(scgi::manager::remove_tree_at(fd, "tree"));  // already gone: fine
  ::close(fd);
  fs::remove_all(top);
}
