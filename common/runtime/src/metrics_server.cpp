#include "scgi/runtime/metrics_server.hpp"

#include <netinet/in.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>
#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "scgi/log.hpp"
#include "scgi/runtime/endpoint.hpp"
#include "scgi/runtime/handover_bytes.hpp"
#include "scgi/runtime/metric_families.hpp"
#include "scgi/runtime/program_upgrade.hpp"
#include "scgi/runtime/scrape_request.hpp"

namespace scgi {
namespace {

using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;
using nlohmann::json;

constexpr auto kNoThrow = as_tuple(asio::use_awaitable);
constexpr int kBacklog = 128;

// scgi_build_info: one series, always 1, its labels say what runs.
class BuildInfo final : public prometheus::Collectable {
 public:
  explicit BuildInfo(std::string program) : program_(std::move(program)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    auto family = metric_family("scgi_build_info",
                                "The running build: always 1, labelled by program and version",
                                prometheus::MetricType::Gauge);
    family.metric.push_back(gauge_metric({{"program", program_}, {"version", SCGI_VERSION}}, 1));
    auto upgrades = metric_family("scgi_upgrades_total",
                                  "Upgrades in place since the daemon started, by result",
                                  prometheus::MetricType::Counter);
    const UpgradeCounts counts = upgrade_counts();
    upgrades.metric.push_back(counter_metric({{"result", "done"}}, counts.done));
    upgrades.metric.push_back(counter_metric({{"result", "failed"}}, counts.failed));
    return {std::move(family), std::move(upgrades)};
  }

 private:
  std::string program_;
};

// accept(2)'s errors that concern only the connection it took (gone bad in
// the backlog): the next one is taken at once.
bool one_connection_failed(const asio::error_code& failure) {
  if (failure.category() != asio::system_category()) return false;
  switch (failure.value()) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM:
      return true;
    default:
      return false;
  }
}

std::string received_bytes(const json& connection) {
  return bytes_from_json_text(connection.at("received").get<std::string>()).value_or("");
}

}  // namespace

// One client connection: its socket, what it sent, until when it may send it.
struct MetricsServer::Connection {
  explicit Connection(asio::io_context& context) : socket(context) {}
  Socket socket;
  std::string received;
  Clock::time_point read_by;
  bool request_arrived = false;
};

MetricsServer::MetricsServer(Address address, std::string program, const Collectables& collectables)
    : address_(std::move(address)),
      build_info_(std::make_shared<BuildInfo>(std::move(program))),
      collectables_(collectables) {
  collectables_.insert(collectables_.begin(), build_info_);
}

MetricsServer::~MetricsServer() {
  stop_thread();
  connections_.clear();  // their sockets close before the context they belong to
  for (const PausedConnection& connection : paused_)
    ::close(connection.fd);
}

std::unique_ptr<MetricsServer> MetricsServer::start(const Address& address,
                                                    const std::string& program,
                                                    const Collectables& collectables,
                                                    const json* handed, std::string& error) {
  auto endpoints = resolve_endpoints(address);
  if (address.is_unix() || !endpoints) {
    error = "cannot serve metrics on " + address.to_string() + ": " +
            (address.is_unix() ? std::string("not a TCP address") : endpoints.error());
    if (handed) close_handover(*handed);
    return nullptr;
  }
  const Endpoint endpoint = endpoints.value().front();
  std::unique_ptr<MetricsServer> server(new MetricsServer(address, program, collectables));
  std::vector<PausedConnection> carried;
  asio::error_code failure;
  // The previous image's socket when it listens where the file says: the
  // scrapes waiting in its backlog are answered.
  if (handed && handed->at("listen").get<std::string>() == address.to_string() &&
      adopt_descriptor(handed->at("fd").get<int>())) {
    server->acceptor_.assign(endpoint.protocol(), handed->at("fd").get<int>(), failure);
    for (const json& connection : handed->at("connections"))
      if (adopt_descriptor(connection.at("fd").get<int>()))
        carried.push_back({connection.at("fd").get<int>(), received_bytes(connection),
                           Clock::time_point(std::chrono::nanoseconds(
                               connection.at("read_by").get<std::int64_t>()))});
    if (failure) {
      ::close(handed->at("fd").get<int>());
      for (const PausedConnection& connection : carried)
        ::close(connection.fd);
    }
  } else {
    if (handed) close_handover(*handed);
    Acceptor& acceptor = server->acceptor_;
    acceptor.open(endpoint.protocol(), failure);
    if (!failure) acceptor.set_option(Acceptor::reuse_address(true), failure);
    if (!failure && address.host_is_ipv6()) {
      const int one = 1;
      ::setsockopt(acceptor.native_handle(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (!failure) acceptor.bind(endpoint, failure);
    if (!failure) acceptor.listen(kBacklog, failure);
  }
  if (failure) {
    error = "cannot serve metrics on " + address.to_string() + ": " + failure.message();
    return nullptr;
  }
  server->resume_with(std::move(carried));
  return server;
}

void MetricsServer::close_handover(const json& state) {
  if (adopt_descriptor(state.at("fd").get<int>())) ::close(state.at("fd").get<int>());
  for (const json& connection : state.at("connections"))
    if (adopt_descriptor(connection.at("fd").get<int>())) ::close(connection.at("fd").get<int>());
}

std::string MetricsServer::collect_text() {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& weak : collectables_)
    if (const auto collectable = weak.lock()) {
      auto more = collectable->Collect();
      std::move(more.begin(), more.end(), std::back_inserter(families));
    }
  return prometheus::TextSerializer().Serialize(families);
}

void MetricsServer::resume_with(std::vector<PausedConnection> connections) {
  pausing_ = false;
  ++generation_;
  context_.restart();
  asio::error_code failure;
  const auto protocol = acceptor_.local_endpoint(failure).protocol();
  for (PausedConnection& paused : connections) {
    auto connection = connections_.emplace(connections_.end(), context_);
    if (!failure) connection->socket.assign(protocol, paused.fd, failure);
    if (failure) ::close(paused.fd);  // then served as a closed connection: it ends at once
    connection->received = std::move(paused.received);
    connection->read_by = paused.read_by;
    spawn_serving(connection);
  }
  busy_.fetch_add(1);
  asio::co_spawn(context_, accept_loop(), [this](const std::exception_ptr& failure) {
    busy_.fetch_sub(1);
    if (failure) log_error("/metrics: the accept loop failed");
  });
  thread_ = std::thread([this] { context_.run(); });
}

void MetricsServer::spawn_serving(std::list<Connection>::iterator connection) {
  busy_.fetch_add(1);
  asio::co_spawn(context_, serve(connection), [this](const std::exception_ptr& failure) {
    busy_.fetch_sub(1);
    if (failure) log_error("/metrics: a connection failed");
  });
}

void MetricsServer::stop_thread() {
  context_.stop();
  if (thread_.joinable()) thread_.join();
}

asio::awaitable<void> MetricsServer::accept_loop() {
  asio::steady_timer pause(context_);
  while (!pausing_) {
    Socket socket(context_);
    const auto [failure] = co_await acceptor_.async_accept(socket, kNoThrow);
    // One accepted as the pause began is served (or handed over) like the rest.
    if (failure == asio::error::operation_aborted) co_return;
    if (failure && one_connection_failed(failure)) continue;
    if (failure) {  // out of descriptors, most likely: wait, the backlog keeps them
      pause.expires_after(std::chrono::milliseconds(100));
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    if (!make_room()) continue;  // the new one closes: every open one has sent its request
    auto connection = connections_.emplace(connections_.end(), context_);
    connection->socket = std::move(socket);
    connection->read_by = Clock::now() + kRequestTimeout;
    spawn_serving(connection);
  }
}

bool MetricsServer::make_room() {
  std::size_t open = 0;
  auto oldest_waiting = connections_.end();
  for (auto it = connections_.begin(); it != connections_.end(); ++it) {
    if (!it->socket.is_open()) continue;  // closed, its coroutine not yet ended
    ++open;
    if (!it->request_arrived && oldest_waiting == connections_.end()) oldest_waiting = it;
  }
  if (open < kMaxConnections) return true;
  if (oldest_waiting == connections_.end()) return false;
  asio::error_code ignored;
  oldest_waiting->socket.close(ignored);
  return true;
}

asio::awaitable<void> MetricsServer::serve(std::list<Connection>::iterator connection) {
  Connection& client = *connection;
  if (co_await read_request(client)) co_await answer(client);
  if (client.socket.is_open()) {
    asio::error_code ignored;
    client.socket.shutdown(Socket::shutdown_send, ignored);
    client.socket.close(ignored);
  }
  connections_.erase(connection);
}

asio::awaitable<bool> MetricsServer::read_request(Connection& client) {
  asio::steady_timer deadline(context_);
  std::array<char, 4096> chunk;
  while (end_of_request_head(client.received) == std::string::npos &&
         client.received.size() <= kMaxScrapeHeadBytes) {
    if (pausing_) {  // an upgrade: the next image reads the rest
      hand_over(client);
      co_return false;
    }
    deadline.expires_at(client.read_by);
    const auto result = co_await (client.socket.async_read_some(asio::buffer(chunk), kNoThrow) ||
                                  deadline.async_wait(kNoThrow));
    if (result.index() == 1) co_return false;  // too slow: closed
    const auto [failure, size] = std::get<0>(result);
    client.received.append(chunk.data(), size);
    // Cancelled by pause(): handed over at the top of the loop.
    if (failure && !(failure == asio::error::operation_aborted && pausing_)) co_return false;
  }
  client.request_arrived = true;
  co_return true;
}

asio::awaitable<void> MetricsServer::answer(Connection& client) {
  const std::string_view received = client.received;
  const ScrapeAnswer answer = answer_scrape(received.substr(0, end_of_request_head(received)));
  const std::string response =
      scrape_response(answer, answer.status == 200 ? collect_text() : std::string());
  asio::steady_timer deadline(context_, kRequestTimeout);
  co_await (asio::async_write(client.socket, asio::buffer(response), kNoThrow) ||
            deadline.async_wait(kNoThrow));
}

void MetricsServer::hand_over(Connection& client) {
  asio::error_code failure;
  const int fd = client.socket.release(failure);
  if (failure) return;  // closed with its socket
  paused_.push_back({fd, std::move(client.received), client.read_by});
}

asio::awaitable<void> MetricsServer::pause() {
  asio::post(context_, [this, generation = generation_] {
    // Left in the queue by a pause that ended without running it (the thread
    // had stopped): not this serving's pause.
    if (generation != generation_) return;
    pausing_ = true;
    asio::error_code ignored;
    acceptor_.cancel(ignored);
    for (Connection& connection : connections_)
      if (!connection.request_arrived) connection.socket.cancel(ignored);
  });
  // Responses being written end by their deadline; the rest leave at once.
  asio::steady_timer poll(co_await asio::this_coro::executor);
  const auto give_up = Clock::now() + kRequestTimeout + std::chrono::seconds(1);
  while (busy_.load() > 0 && Clock::now() < give_up) {
    poll.expires_after(std::chrono::milliseconds(1));
    co_await poll.async_wait(kNoThrow);
  }
  stop_thread();
}

void MetricsServer::resume() {
  if (thread_.joinable()) return;  // never paused
  std::vector<PausedConnection> paused = std::move(paused_);
  paused_.clear();
  resume_with(std::move(paused));
}

json MetricsServer::handover_state(std::vector<int>& descriptors) const {
  json connections = json::array();
  for (const PausedConnection& connection : paused_) {
    connections.push_back({{"fd", connection.fd},
                           {"received", bytes_to_json_text(connection.received)},
                           {"read_by", connection.read_by.time_since_epoch().count()}});
    descriptors.push_back(connection.fd);
  }
  const int fd = const_cast<Acceptor&>(acceptor_).native_handle();  // a getter, despite its type
  descriptors.push_back(fd);
  return {{"listen", address_.to_string()}, {"fd", fd}, {"connections", connections}};
}

std::optional<std::string> MetricsServer::check_handover(const json& state) {
  try {
    state.at("listen").get<std::string>();
    if (state.at("fd").get<int>() < 0) return "/metrics: no listening socket";
    for (const json& connection : state.at("connections")) {
      connection.at("fd").get<int>();
      const auto received = bytes_from_json_text(connection.at("received").get<std::string>());
      const Clock::time_point read_by(
          std::chrono::nanoseconds(connection.at("read_by").get<std::int64_t>()));
      if (!received || received->size() > kMaxScrapeHeadBytes ||
          read_by > Clock::now() + kRequestTimeout)
        return "/metrics: a connection out of bounds";
    }
  } catch (const std::exception& e) {
    return std::string("/metrics: ") + e.what();
  }
  return std::nullopt;
}

bool start_metrics_server(const MetricsConfig& config, const std::string& program,
                          const MetricsServer::Collectables& collectables, const json*& handed,
                          std::unique_ptr<MetricsServer>& server) {
  const json* const previous = std::exchange(handed, nullptr);
  if (!config.listen) {
    if (previous) MetricsServer::close_handover(*previous);  // turned off meanwhile
    return true;
  }
  std::string error;
  server = MetricsServer::start(*config.listen, program, collectables, previous, error);
  if (!server) {
    log_error("{}", error);
    return false;
  }
  log_info("metrics on http://{}/metrics", config.listen->to_string());
  return true;
}

}  // namespace scgi
