// Serves /metrics in Prometheus text format, on its own thread, for every
// collectable added: the proxy's and the manager's. A small HTTP/1.x server
// of our own (one request per connection) rather than an embedded web
// server, so that an upgrade in place can hand its listening socket, and the
// scrapes still arriving, to the next image: a scrape during the switch waits
// in the backlog and is answered, never refused.
#pragma once

#include <prometheus/collectable.h>

#include <asio/awaitable.hpp>
#include <asio/basic_socket_acceptor.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "scgi/address.hpp"
#include "scgi/config.hpp"

namespace scgi {

class MetricsServer {
 public:
  // Each connection must send its whole request within this, and take the
  // response within it again. Prometheus sends its GET at once.
  static constexpr std::chrono::milliseconds kRequestTimeout{3000};
  // Connections open at once. A new one past it closes the oldest that has
  // not sent its request yet: silent connections never keep a scrape out.
  static constexpr std::size_t kMaxConnections = 64;

  // Serves `collectables`, each scrape collecting every one still alive;
  // nullptr and `error` set when the address cannot be served. `handed` is
  // what the previous image's handover_state() gave (its socket is used when
  // it is for the same address), or nullptr. Serves
  // scgi_build_info{program, version} 1 too: which build of which daemon
  // answers (a dashboard shows an upgrade as the version changing).
  using Collectables = std::vector<std::weak_ptr<prometheus::Collectable>>;
  static std::unique_ptr<MetricsServer> start(const Address& address, const std::string& program,
                                              const Collectables& collectables,
                                              const nlohmann::json* handed, std::string& error);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The address as configured.
  const Address& address() const { return address_; }

  // --- Upgrade in place (called on the daemon's control thread). ---
  // Stops accepting (new scrapes wait in the backlog), lets responses being
  // written finish, and takes the connections whose request has not fully
  // arrived out of service, to hand over. The listening socket stays open.
  asio::awaitable<void> pause();
  // The upgrade failed: serves again, the paused connections included (if
  // it was paused).
  void resume();
  // After pause(): the listening socket and the paused connections.
  nlohmann::json handover_state(std::vector<int>& descriptors) const;
  static std::optional<std::string> check_handover(const nlohmann::json& state);
  // The next image does not serve /metrics (or elsewhere): closes what was handed.
  static void close_handover(const nlohmann::json& state);

 private:
  struct Connection;
  using Clock = std::chrono::steady_clock;
  // A connection taken out of service by pause(): what it had sent so far and
  // until when it may send the rest (CLOCK_MONOTONIC, which an exec keeps:
  // an upgrade gives it no more time).
  struct PausedConnection {
    int fd;
    std::string received;
    Clock::time_point read_by;
  };

  using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;

  MetricsServer(Address address, std::string program, const Collectables& collectables);
  // Serves (again) on the server's thread, with these connections first.
  void resume_with(std::vector<PausedConnection> connections);
  void stop_thread();
  void spawn_serving(std::list<Connection>::iterator connection);
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(std::list<Connection>::iterator connection);
  // False when the connection ends without a request: gone, too slow, or
  // handed over (pause()).
  asio::awaitable<bool> read_request(Connection& client);
  asio::awaitable<void> answer(Connection& client);
  void hand_over(Connection& client);
  // Past kMaxConnections open, closes the oldest that has not sent its
  // request; false when every one has (the new one is closed instead).
  bool make_room();
  std::string collect_text();

  Address address_;
  asio::io_context context_{1};
  Acceptor acceptor_{context_};
  std::thread thread_;
  // Touched only on the server's thread while it runs (else on the caller's).
  std::list<Connection> connections_;
  bool pausing_ = false;
  std::vector<PausedConnection> paused_;  // filled while pausing
  std::uint64_t generation_ = 0;          // one more at each resume_with()
  std::atomic<std::size_t> busy_{0};      // accept loop and connections still running

  std::shared_ptr<prometheus::Collectable> build_info_;
  Collectables collectables_;  // read by the server's thread only
};

// How both daemons start /metrics: not at all when `config` has no address
// (then a socket the previous image handed is closed), else on it (on the
// handed socket after an upgrade; `handed` is used once and cleared), the
// address or the error logged. False on an error.
bool start_metrics_server(const MetricsConfig& config, const std::string& program,
                          const MetricsServer::Collectables& collectables,
                          const nlohmann::json*& handed, std::unique_ptr<MetricsServer>& server);

}  // namespace scgi
