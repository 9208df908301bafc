#include "scgi/runtime/service_notifier.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// $NOTIFY_SOCKET pointed at an abstract datagram socket of this test's own
// ("@name", as systemd allows), for the notifications one section sends.
class NotifyReceiver {
 public:
  NotifyReceiver() {
    const std::string name = "scgi-notify-test-" + std::to_string(::getpid());
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path + 1, name.data(), name.size());  // sun_path[0] = 0: abstract
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    REQUIRE(fd_ >= 0);
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size())) == 0);
    ::setenv("NOTIFY_SOCKET", ("@" + name).c_str(), 1);
  }
  ~NotifyReceiver() {
    ::unsetenv("NOTIFY_SOCKET");
    ::close(fd_);
  }
  // The notification sent last (sd_notify has returned: it is queued); "" if none.
  std::string received() {
    char buffer[4096];
    const ssize_t size = ::recv(fd_, buffer, sizeof(buffer), 0);
    return size > 0 ? std::string(buffer, static_cast<std::size_t>(size)) : std::string();
  }

 private:
  int fd_ = -1;
};

scgi::Config config_of(const char* text) {
  const scgi::ConfigResult result = scgi::parse_config(text, "t.toml", scgi::Mode::manager);
  REQUIRE(result);
  return result.config();
}

}  // namespace

TEST_CASE("each notification is one datagram of systemd's fields, the status on one line",
          "[service_notifier]") {
  NotifyReceiver receiver;
  scgi::notify_ready("serving 1 pool");
  CHECK(receiver.received() == "READY=1\nSTATUS=serving 1 pool");
  scgi::notify_stopping("stopping:\nsoon");
  CHECK(receiver.received() == "STOPPING=1\nSTATUS=stopping: soon");
  scgi::notify_status("busy");
  CHECK(receiver.received() == "STATUS=busy");
  scgi::notify_main_pid(4242);
  CHECK(receiver.received() == "MAINPID=4242");

  scgi::notify_reloading("reloading t.toml");
  const std::string reloading = receiver.received();
  CHECK(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  CHECK(reloading.find("\nSTATUS=reloading t.toml") != std::string::npos);
}

TEST_CASE("without NOTIFY_SOCKET a notification does nothing", "[service_notifier]") {
  ::unsetenv("NOTIFY_SOCKET");
  scgi::notify_ready("serving");  // neither throws nor blocks
  scgi::notify_reloading("reloading");
  SUCCEED();
}

TEST_CASE("the status says what runs and how a reload ended", "[service_notifier]") {
  const scgi::Config config = config_of(R"([[pool]]
name = "app"
listen = "127.0.0.1:4000"
command = ["a"]
workers = 2
)");
  CHECK(scgi::serving_status(config) == "serving 1 pool, 2 workers");
  CHECK(scgi::reload_status(true, config) == "reload applied: serving 1 pool, 2 workers");
  CHECK(scgi::reload_status(false, config) ==
        "reload rejected (see the log), the running configuration stays: serving 1 pool, 2 "
        "workers");
  CHECK(scgi::stopping_status(std::chrono::seconds(30)) ==
        "stopping: requests in flight finish within 30s");
}
