// The balancer's side of an upgrade (ProxyServer's upgrade members): pausing
// the front doors, the state the next image continues with, and taking that
// state over: listening sockets, every pool's counters, discovered backends
// with their drains, and the connections still sending their request head.
#include <sys/socket.h>
#include <unistd.h>

#include <asio/post.hpp>

#include <algorithm>

#include "discovery/discovery_stats.hpp"
#include "exchange.hpp"
#include "listener.hpp"
#include "parked_heads.hpp"
#include "scgi/log.hpp"
#include "scgi/proxy/proxy_server.hpp"
#include "scgi/runtime/handover_bytes.hpp"
#include "scgi/runtime/program_upgrade.hpp"

namespace scgi::proxy {
namespace {

using nlohmann::json;

// The request heads an upgrade hands over, in bytes received, at most.
constexpr std::size_t kMaxHandedHeadBytes = 16 * 1024 * 1024;

json histogram_to_json(const HistogramSnapshot& histogram) {
  return {{"buckets", histogram.buckets},
          {"count", histogram.count},
          {"sum_seconds", histogram.sum_seconds}};
}

HistogramSnapshot histogram_from_json(const json& in) {
  HistogramSnapshot out;
  const auto buckets = in.at("buckets").get<std::vector<std::uint64_t>>();
  if (buckets.size() != out.buckets.size())
    throw std::runtime_error("histogram buckets differ from this build's");
  std::copy(buckets.begin(), buckets.end(), out.buckets.begin());
  out.count = in.at("count").get<std::uint64_t>();
  out.sum_seconds = in.at("sum_seconds").get<double>();
  return out;
}

// Counts by name, so that a build with more (or fewer) names reads them.
template <std::size_t N, class Names>
json named_counts(const std::array<std::uint64_t, N>& counts, const Names& names) {
  json out = json::object();
  for (std::size_t i = 0; i < N; ++i)
    if (counts[i] != 0) out[names[i]] = counts[i];
  return out;
}

template <std::size_t N, class Names>
void read_named_counts(const json& in, const Names& names, std::array<std::uint64_t, N>& counts) {
  for (const auto& [name, value] : in.items()) {
    const auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) throw std::runtime_error("unknown counter '" + name + "'");
    counts[static_cast<std::size_t>(it - names.begin())] = value.template get<std::uint64_t>();
  }
}

json stats_to_json(const PoolStatsSnapshot& stats) {
  json codes = json::object();
  for (std::size_t i = 0; i < stats.requests_by_code.size(); ++i)
    if (stats.requests_by_code[i] != 0)
      codes[std::to_string(kFirstCode + static_cast<int>(i))] = stats.requests_by_code[i];
  return {{"requests_by_code", codes},
          {"request_duration", histogram_to_json(stats.request_duration)},
          {"queue_wait", histogram_to_json(stats.queue_wait)},
          {"rejected", named_counts(stats.rejected, kRejectReasons)},
          {"outcomes", named_counts(stats.outcomes, kOutcomes)},
          {"retries", stats.retries},
          {"bytes_in", stats.bytes_in},
          {"bytes_out", stats.bytes_out}};
}

PoolStatsSnapshot stats_from_json(const json& in) {
  PoolStatsSnapshot out;
  for (const auto& [code, count] : in.at("requests_by_code").items()) {
    const int number = std::stoi(code);
    if (number < kFirstCode || number > kLastCode) throw std::runtime_error("bad status " + code);
    out.requests_by_code[static_cast<std::size_t>(number - kFirstCode)] =
        count.get<std::uint64_t>();
  }
  out.request_duration = histogram_from_json(in.at("request_duration"));
  out.queue_wait = histogram_from_json(in.at("queue_wait"));
  read_named_counts(in.at("rejected"), kRejectReasons, out.rejected);
  read_named_counts(in.at("outcomes"), kOutcomes, out.outcomes);
  out.retries = in.at("retries").get<std::uint64_t>();
  out.bytes_in = in.at("bytes_in").get<std::uint64_t>();
  out.bytes_out = in.at("bytes_out").get<std::uint64_t>();
  return out;
}

using ErrorCounts = std::array<std::uint64_t, kBackendErrorKinds>;

// Everything a pool's entry holds, read without using any of it.
struct PoolHandover {
  PoolStatsSnapshot stats;
  std::map<std::string, ErrorCounts> series;
  std::vector<std::pair<std::string, bool>> discovered;  // name, draining
  std::array<std::uint64_t, kResolutionResults.size()> resolutions{};
  std::vector<std::string> down;  // backends found down (health probes run on them)
};

PoolHandover read_pool(const json& in) {
  PoolHandover out;
  out.stats = stats_from_json(in.at("stats"));
  for (const auto& [label, errors] : in.at("series").items())
    out.series[label] = errors.get<ErrorCounts>();
  for (const json& backend : in.value("discovered", json::array()))
    out.discovered.emplace_back(backend.at("name").get<std::string>(),
                                backend.at("draining").get<bool>());
  if (in.contains("resolutions"))
    read_named_counts(in.at("resolutions"), kResolutionResults, out.resolutions);
  out.down = in.value("down", std::vector<std::string>{});
  return out;
}

// steady_clock is CLOCK_MONOTONIC, which an exec does not reset: a deadline
// handed over as a point in time goes on, it does not start over.
std::int64_t to_json_time(HeadSoFar::Clock::time_point time) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(time.time_since_epoch()).count();
}

HeadSoFar::Clock::time_point from_json_time(const json& in) {
  return HeadSoFar::Clock::time_point(std::chrono::duration_cast<HeadSoFar::Clock::duration>(
      std::chrono::nanoseconds(in.get<std::int64_t>())));
}

// A connection still sending its request head, as handed over.
struct HandedHead {
  int fd = -1;
  std::string pool;
  HeadSoFar head;
};

HandedHead read_head(const json& in) {
  HandedHead out;
  out.fd = in.at("fd").get<int>();
  if (out.fd < 0) throw std::runtime_error("a head's connection has no descriptor");
  out.pool = in.at("pool").get<std::string>();
  auto received = bytes_from_json_text(in.at("received").get<std::string>());
  if (!received) throw std::runtime_error("a head's bytes are not as an upgrade writes them");
  out.head.received = std::move(*received);
  out.head.accepted_at = from_json_time(in.at("accepted_at"));
  out.head.deadline = from_json_time(in.at("deadline_at"));
  return out;
}

// The handed descriptor `fd` as a socket of `context`: it must be a connected stream socket.
std::optional<Socket> handed_socket(asio::io_context& context, int fd, std::string& error) {
  sockaddr_storage address{};
  socklen_t size = sizeof address;
  int type = 0;
  socklen_t type_size = sizeof type;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) != 0 ||
      ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_size) != 0 || type != SOCK_STREAM) {
    error = "not a stream socket";
    return std::nullopt;
  }
  const int family = address.ss_family;
  const asio::generic::stream_protocol protocol(family, family == AF_UNIX ? 0 : IPPROTO_TCP);
  Socket socket(context);
  asio::error_code ec;
  socket.assign(protocol, fd, ec);
  if (ec) {
    error = ec.message();
    return std::nullopt;
  }
  return socket;
}

}  // namespace

std::optional<std::string> ProxyServer::check_handover(const json& state) {
  try {
    for (const auto& [name, pool] : state.at("pools").items()) {
      read_pool(pool);
      if (pool.contains("listen_fd") && pool.at("listen_fd").get<int>() < 0)
        return "pool " + name + ": no listening socket";
    }
    state.value("next_slow_request_id", std::uint64_t{1});  // absent before slow requests
    for (const json& entry : state.value("heads", json::array())) {
      const HandedHead head = read_head(entry);
      if (!state.at("pools").contains(head.pool))
        return "a connection of pool " + head.pool + ", which the state does not have";
    }
  } catch (const std::exception& e) {
    return std::string("the balancer's part: ") + e.what();
  }
  return std::nullopt;
}

void ProxyServer::adopt(const json& state) {
  for (const auto& [name, pool] : state.at("pools").items()) {
    if (pool.contains("listen_fd"))
      inherited_listeners_[pool.at("listen").get<std::string>()] = pool.at("listen_fd").get<int>();
    inherited_pools_[name] = pool;
  }
  inherited_heads_ = state.value("heads", json::array());
  continue_slow_request_ids(state.value("next_slow_request_id", std::uint64_t{1}));
}

void ProxyServer::resume_inherited_heads() {
  std::size_t next = 0;
  for (const json& entry : std::exchange(inherited_heads_, json::array())) {
    HandedHead handed = read_head(entry);
    if (!adopt_descriptor(handed.fd)) {
      log_warn("upgrade: a connection of pool {} handed over (descriptor {}) is not open",
               handed.pool, handed.fd);
      continue;
    }
    const auto pool = find_pool(handed.pool);
    if (!pool) {
      log_info(
          "upgrade: pool {} is gone from the configuration; its connection still sending "
          "a request head is closed",
          handed.pool);
      ::close(handed.fd);
      continue;
    }
    std::string error;
    auto socket = handed_socket(*contexts_[next++ % contexts_.size()], handed.fd, error);
    if (!socket) {
      log_warn("upgrade: a connection of pool {} handed over (descriptor {}) is unusable: {}",
               handed.pool, handed.fd, error);
      ::close(handed.fd);
      continue;
    }
    accept(pool, std::move(*socket), std::make_unique<HeadSoFar>(std::move(handed.head)));
  }
}

std::unique_ptr<Listener> ProxyServer::open_listener(const PoolConfig& pool, std::string& error) {
  const auto inherited = inherited_listeners_.find(pool.listen->to_string());
  if (inherited == inherited_listeners_.end())
    return Listener::open(*pool.listen, {pool.listen_mode, pool.listen_group}, error);
  const int fd = inherited->second;
  inherited_listeners_.erase(inherited);
  if (!adopt_descriptor(fd)) {
    error = "the listening socket handed over for " + pool.listen->to_string() + " is not open";
    return nullptr;
  }
  auto listener = Listener::adopt(*pool.listen, fd, error);
  if (!listener) ::close(fd);
  return listener;
}

std::shared_ptr<DiscoveryStats> ProxyServer::carry_over(Pool& pool, const PoolConfig& config) {
  if (!inherited_pools_.contains(pool.name())) return nullptr;
  const PoolHandover earlier = read_pool(inherited_pools_.at(pool.name()));
  pool.stats().carry(earlier.stats);
  for (const auto& [label, errors] : earlier.series)
    pool.series_book().carry(label, errors);
  if (config.kind == PoolKind::discover) {
    // There before the first request: the discoverer adopts them as a reload's does.
    for (const auto& [name, draining] : earlier.discovered) {
      auto address = parse_address(name);
      auto endpoints = address ? resolve_endpoints(address.value())
                               : Result<std::vector<Endpoint>>::fail(address.error());
      if (!endpoints) {
        log_warn("pool {}: discovered backend {} left out: {}", pool.name(), name,
                 endpoints.error());
        continue;
      }
      pool.add_backend(name, std::move(endpoints).value(),
                       draining ? Backend::Membership::draining : Backend::Membership::ready);
    }
    auto stats = std::make_shared<DiscoveryStats>();
    for (std::size_t i = 0; i < earlier.resolutions.size(); ++i)
      stats->resolutions[i].store(earlier.resolutions[i]);
    return stats;
  }
  return nullptr;
}

void ProxyServer::carry_health(Pool& pool) {
  if (!inherited_pools_.contains(pool.name())) return;
  const PoolHandover earlier = read_pool(inherited_pools_.at(pool.name()));
  for (const auto& backend : pool.backends())
    if (std::find(earlier.down.begin(), earlier.down.end(), backend->name()) !=
            earlier.down.end() &&
        backend->mark_down() && pool.events().down)
      pool.events().down(pool, backend);  // probed until it answers, as before
}

asio::awaitable<void> ProxyServer::pause(std::chrono::milliseconds timeout) {
  pausing_.store(true);
  std::vector<Listener*> listeners;
  for (auto& [name, entry] : pools_)
    if (entry.listener) listeners.push_back(entry.listener.get());
  for (Listener* listener : listeners)
    co_await listener->pause(control_.get_executor());
  // A client that has not sent its whole head may take its time (up to
  // client_timeout) or never send it: not waited for, it goes on in the next
  // image. Each exchange sets its connection aside on its own thread.
  for (std::size_t i = 0; i < contexts_.size(); ++i)
    asio::post(*contexts_[i],
               [live = live_[i].get(), shelf = parked_heads_.get()] { live->park_heads(*shelf); });
  co_await finish_exchanges(timeout);
  std::size_t parked = 0;
  parked_heads_->visit([&](const ParkedHead&) { ++parked; });
  if (parked > 0)
    log_info("upgrade: {} connections still sending their request head go on in the next image",
             parked);
}

void ProxyServer::resume() {
  pausing_.store(false);
  // The heads set aside go on here, where they were (accept() closes them if a stop began).
  for (ParkedHead& parked : parked_heads_->take())
    accept(parked.pool, std::move(parked.client),
           std::make_unique<HeadSoFar>(std::move(parked.head)));
  if (stopping_.load()) return;  // its listeners are closed for good
  std::lock_guard lock(pools_mutex_);
  for (auto& [name, entry] : pools_)
    if (entry.listener) start_listener(entry.pool, *entry.listener);
}

json ProxyServer::handover_state(std::vector<int>& descriptors) const {
  json pools = json::object();
  std::lock_guard lock(pools_mutex_);
  for (const auto& [name, entry] : pools_) {
    json series = json::object();
    for (const BackendSeries& one : entry.pool->backend_series())
      series[one.label] = one.errors;
    json down = json::array();
    for (const auto& backend : entry.pool->backends())
      if (!backend->up()) down.push_back(backend->name());
    json pool{{"stats", stats_to_json(entry.pool->stats().snapshot())},
              {"series", series},
              {"down", down}};
    if (entry.listener) {
      pool["listen"] = entry.listener->address().to_string();
      pool["listen_fd"] = entry.listener->fd();
      descriptors.push_back(entry.listener->fd());
    }
    if (entry.pool->settings()->kind == PoolKind::discover) {
      json discovered = json::array();
      for (const auto& backend : entry.pool->backends())
        discovered.push_back(
            {{"name", backend->name()},
             {"draining", backend->membership() == Backend::Membership::draining}});
      pool["discovered"] = discovered;
    }
    if (entry.discovery_stats) {
      std::array<std::uint64_t, kResolutionResults.size()> counts{};
      for (std::size_t i = 0; i < counts.size(); ++i)
        counts[i] = entry.discovery_stats->resolutions[i].load();
      pool["resolutions"] = named_counts(counts, kResolutionResults);
    }
    pools[name] = pool;
  }
  // Not handed (closed with the exec): a head whose pool a reload removed
  // (the next image has no pool for it), and those past a bound on the bytes
  // the state holds for heads, which many clients could otherwise swell.
  json heads = json::array();
  std::size_t head_bytes = 0;
  parked_heads_->visit([&](ParkedHead& parked) {
    if (!pools.contains(parked.pool->name())) return;
    head_bytes += parked.head.received.size();
    if (head_bytes > kMaxHandedHeadBytes) return;
    const int fd = parked.client.native_handle();
    heads.push_back({{"pool", parked.pool->name()},
                     {"fd", fd},
                     {"received", bytes_to_json_text(parked.head.received)},
                     {"accepted_at", to_json_time(parked.head.accepted_at)},
                     {"deadline_at", to_json_time(parked.head.deadline)}});
    descriptors.push_back(fd);
  });
  // Slow request ids go on where they were: the pool's log never shows one twice.
  return {{"pools", pools}, {"heads", heads}, {"next_slow_request_id", peek_slow_request_id()}};
}

}  // namespace scgi::proxy
