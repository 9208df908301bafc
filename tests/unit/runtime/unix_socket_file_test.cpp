#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "scgi/runtime/unix_socket_file.hpp"

using namespace scgi;

namespace {

const UnixSocketWording kWording{
    .live_owner = "another test server is running",
    .other_path = "pick another path",
    .group_setting = "test_group",
};

class ScratchFolder {
 public:
  ScratchFolder() {
    char name[] = "/tmp/scgi-socket-file-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw std::runtime_error("cannot create a temp folder");
    path_ = name;
  }
  ~ScratchFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A Unix stream socket, closed at the end of the scope.
struct Fd {
  Fd() : fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) { REQUIRE(fd >= 0); }
  ~Fd() { ::close(fd); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int fd;
};

sockaddr_un address_of(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  return address;
}

// Whether a client connects at `path` right now (0) or connect()'s errno.
int connect_errno(const std::string& path) {
  Fd client;
  const sockaddr_un address = address_of(path);
  return ::connect(client.fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0
             ? 0
             : errno;
}

bool exists(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0;
}

std::uint32_t file_mode(const std::string& path) {
  struct stat info {};
  REQUIRE(::lstat(path.c_str(), &info) == 0);
  return info.st_mode & 07777;
}

}  // namespace

TEST_CASE("nothing at the path leaves nothing to clear", "[unix_socket_file]") {
  ScratchFolder folder;
  std::string error;
  CHECK(clear_stale_unix_socket(folder.file("none.sock"), kWording, error) == StaleSocket::absent);
  CHECK(error.empty());
}

TEST_CASE("a socket file nobody accepts on is stale and removed", "[unix_socket_file]") {
  ScratchFolder folder;
  const std::string path = folder.file("stale.sock");
  {
    Fd left;  // bound, then closed: its process died
    REQUIRE(bind_unix_socket_file(left.fd, path) == 0);
  }
  REQUIRE(exists(path));
  std::string error;
  CHECK(clear_stale_unix_socket(path, kWording, error) == StaleSocket::removed);
  CHECK_FALSE(exists(path));
}

TEST_CASE("a live socket is refused, kept, and still accepts", "[unix_socket_file]") {
  ScratchFolder folder;
  const std::string path = folder.file("live.sock");
  Fd live;
  REQUIRE(bind_unix_socket_file(live.fd, path) == 0);
  REQUIRE(::listen(live.fd, 16) == 0);
  std::string error;
  CHECK_FALSE(clear_stale_unix_socket(path, kWording, error));
  CHECK(error ==
        "another test server is running on " + path + " (stop it first, or pick another path)");
  CHECK(exists(path));
  CHECK(connect_errno(path) == 0);
}

TEST_CASE("a live socket whose backlog is full is refused too, without waiting",
          "[unix_socket_file]") {
  ScratchFolder folder;
  const std::string path = folder.file("busy.sock");
  Fd live;
  REQUIRE(bind_unix_socket_file(live.fd, path) == 0);
  REQUIRE(::listen(live.fd, 0) == 0);
  // Fill the backlog: non-blocking clients until the kernel answers EAGAIN.
  std::vector<int> waiting;
  const sockaddr_un address = address_of(path);
  for (int i = 0; i < 64; ++i) {
    const int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(client >= 0);
    waiting.push_back(client);
    if (::connect(client, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      REQUIRE(errno == EAGAIN);
      break;
    }
  }
  std::string error;
  CHECK_FALSE(clear_stale_unix_socket(path, kWording, error));
  CHECK_THAT(error, Catch::StartsWith("another test server is running on " + path));
  CHECK(exists(path));
  for (const int client : waiting)
    ::close(client);
}

TEST_CASE("a file that is not a socket is refused and kept", "[unix_socket_file]") {
  ScratchFolder folder;
  const std::string path = folder.file("notes.txt");
  std::ofstream(path) << "keep me";
  std::string error;
  CHECK_FALSE(clear_stale_unix_socket(path, kWording, error));
  CHECK(error == path + " exists and is not a socket; remove it or pick another path");
  std::ifstream kept(path);
  std::string content;
  std::getline(kept, content);
  CHECK(content == "keep me");
}

TEST_CASE("a socket file is born 0600 whatever the umask, then takes its mode",
          "[unix_socket_file]") {
  ScratchFolder folder;
  const std::string path = folder.file("door.sock");
  Fd socket;
  const mode_t old_umask = ::umask(0);
  const int bound = bind_unix_socket_file(socket.fd, path);
  ::umask(old_umask);
  REQUIRE(bound == 0);
  CHECK(file_mode(path) == 0600);

  std::string error;
  CHECK(apply_unix_socket_access(path, {0640, ""}, kWording, error));
  CHECK(file_mode(path) == 0640);

  CHECK_FALSE(apply_unix_socket_access(path, {0660, "no-such-group-here"}, kWording, error));
  CHECK(error ==
        "test_group \"no-such-group-here\" is not a group on this system (see getent "
        "group)");
  CHECK(file_mode(path) == 0640);  // untouched: the group comes before the mode
}

TEST_CASE("access is refused to a file that is no longer a socket", "[unix_socket_file]") {
  ScratchFolder folder;
  const std::string path = folder.file("swapped.sock");
  std::ofstream(path) << "not a socket";
  std::string error;
  CHECK_FALSE(apply_unix_socket_access(path, {0666, ""}, kWording, error));
  CHECK(error == path + " is no longer a socket: another process replaced it");
  CHECK(file_mode(path) != 0666);
}

TEST_CASE("only the socket file this process bound is removed", "[unix_socket_file]") {
  ScratchFolder folder;
  const std::string path = folder.file("mine.sock");
  std::string error;
  Fd first;
  REQUIRE(bind_unix_socket_file(first.fd, path) == 0);
  const auto mine = apply_unix_socket_access(path, {0600, ""}, kWording, error);
  REQUIRE(mine);

  // Another process took the path over meanwhile (the first socket stays open,
  // so its inode cannot be reused for the second file).
  REQUIRE(::unlink(path.c_str()) == 0);
  Fd second;
  REQUIRE(bind_unix_socket_file(second.fd, path) == 0);
  const auto theirs = apply_unix_socket_access(path, {0600, ""}, kWording, error);
  REQUIRE(theirs);

  remove_unix_socket_file(path, *mine);
  CHECK(exists(path));
  remove_unix_socket_file(path, *theirs);
  CHECK_FALSE(exists(path));
}
