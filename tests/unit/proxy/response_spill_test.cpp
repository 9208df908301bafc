#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "response_spill.hpp"

using namespace scgi::proxy;

namespace {

// A fresh folder under the system's temporary one, removed at the end.
struct Folder {
  Folder() {
    std::string pattern = (std::filesystem::temp_directory_path() / "spill-test-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~Folder() { std::filesystem::remove_all(path); }
  std::size_t entries() const {
    return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(path), {}));
  }
  std::string path;
};

// A space using `folder`, with `limit` bytes for all its files.
void use(SpillSpace& space, const Folder& folder, std::uint64_t limit) {
  std::string error;
  auto opened = SpillFolder::open(folder.path, error);
  REQUIRE(opened);
  space.use(std::move(opened), limit);
}

void put(SpillFile& file, const std::string& text) {
  REQUIRE_FALSE(file.prepare(text.size()));
  REQUIRE_FALSE(file.append(text));
}

std::string take(SpillFile& file, std::size_t first, std::size_t second = 0) {
  std::string a(first, '\0');
  std::string b(second, '\0');
  std::error_code error;
  const std::size_t n =
      file.take({asio::buffer(a.data(), a.size()), asio::buffer(b.data(), b.size())}, error);
  REQUIRE_FALSE(error);
  return (a + b).substr(0, n);
}

}  // namespace

TEST_CASE("a spill file gives its bytes back in order, across two pieces", "[spill]") {
  Folder folder;
  SpillSpace space;
  use(space, folder, 1 << 20);
  SpillFile file(space, 1 << 20);
  CHECK(file.empty());
  put(file, "hello ");
  put(file, "world");
  CHECK(file.held() == 11);
  CHECK(take(file, 3, 4) == "hello w");
  CHECK(take(file, 100) == "orld");
  CHECK(file.empty());
  // Emptied, it starts again from the beginning and gave its space back.
  CHECK(space.in_use() == 0);
  CHECK(file.room() == 1 << 20);
  put(file, "again");
  CHECK(take(file, 100) == "again");
}

TEST_CASE("a spill file has no name: nothing is left in the folder", "[spill]") {
  Folder folder;
  SpillSpace space;
  use(space, folder, 1 << 20);
  {
    SpillFile file(space, 1 << 20);
    put(file, std::string(100000, 'x'));
    CHECK(folder.entries() == 0);
    CHECK(space.in_use() == 100000);
  }
  CHECK(space.in_use() == 0);
}

TEST_CASE("a spill file holds at most its own limit until its reader catches up", "[spill]") {
  Folder folder;
  SpillSpace space;
  use(space, folder, 1 << 20);
  SpillFile file(space, 10);
  put(file, "0123456789");
  CHECK(file.room() == 0);
  CHECK(file.prepare(1) == std::errc::file_too_large);
  CHECK(take(file, 4) == "0123");
  CHECK(file.room() == 0);  // still the same file: room comes back once it is read whole
  CHECK(take(file, 10) == "456789");
  CHECK(file.room() == 10);
}

TEST_CASE("all spill files together stay within the shared limit", "[spill]") {
  Folder folder;
  SpillSpace space;
  use(space, folder, 100);
  SpillFile first(space, 1000);
  SpillFile second(space, 1000);
  put(first, std::string(60, 'a'));
  CHECK(second.prepare(50) == std::errc::no_space_on_device);
  put(second, std::string(40, 'b'));
  CHECK(space.in_use() == 100);
  CHECK(take(first, 60) == std::string(60, 'a'));
  // What was prepared and not written is given back.
  REQUIRE_FALSE(second.prepare(60));
  REQUIRE_FALSE(second.append(std::string(10, 'c')));
  CHECK(space.in_use() == 50);
}

TEST_CASE("a spill folder that cannot hold files is refused, naming it", "[spill]") {
  Folder folder;
  std::string error;
  CHECK_FALSE(SpillFolder::open(folder.path + "/missing", error));
  CHECK(error.find("spill_dir " + folder.path + "/missing") != std::string::npos);
  const std::string file_path = folder.path + "/plain-file";
  std::ofstream(file_path) << "not a folder";
  CHECK_FALSE(SpillFolder::open(file_path, error));
  CHECK(SpillFolder::open(folder.path, error));
}

TEST_CASE("without a folder nothing is spilled, and no file is made", "[spill]") {
  SpillSpace space;
  space.use(std::nullopt, 1 << 20);
  SpillFile file(space, 1000);
  CHECK(file.prepare(10) == std::errc::no_space_on_device);
  CHECK(space.in_use() == 0);
}

TEST_CASE("preparing twice takes the difference, and what is left over comes back", "[spill]") {
  Folder folder;
  SpillSpace space;
  use(space, folder, 1000);
  {
    SpillFile file(space, 1000);
    REQUIRE_FALSE(file.prepare(100));
    REQUIRE_FALSE(file.prepare(50));  // already prepared: nothing more taken
    CHECK(space.in_use() == 100);
    REQUIRE_FALSE(file.prepare(300));
    CHECK(space.in_use() == 300);
    REQUIRE_FALSE(file.append(std::string(20, 'x')));
    CHECK(space.in_use() == 20);
    REQUIRE_FALSE(file.prepare(40));  // prepared and never written when the file goes
    CHECK(space.in_use() == 60);
  }
  CHECK(space.in_use() == 0);
}

TEST_CASE("a file already open stays usable when the folder changes", "[spill]") {
  Folder first;
  Folder second;
  SpillSpace space;
  use(space, first, 1000);
  SpillFile file(space, 1000);
  put(file, "before");
  use(space, second, 1000);
  CHECK(space.directory() == second.path);
  put(file, " after");
  CHECK(take(file, 100) == "before after");
}
