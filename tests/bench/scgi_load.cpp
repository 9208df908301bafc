// scgi-load: an SCGI load generator for the benchmarks. Closed loop (C
// connections, each sending its next request when the last one ended) or open
// loop (--rate: requests start at fixed scheduled times, and latency counts from
// the scheduled time, so a slow server cannot hide its queue: no coordinated
// omission). Reports throughput, latency percentiles and errors by kind, overall
// and per class of a workload mix, as a table or as one JSON object.
//
// One request, top to bottom (Runner::exchange): connect → send the request
// while reading the response → read until the server closes → check it. One
// watchdog per request closes the socket at --timeout. Every thread runs its
// own event loop and its own share of the connections or of the schedule;
// their figures are merged at the end. With --request-log, every request is
// also kept (start, latency, outcome) and written out at the end, so that a
// benchmark can split them by what the server was doing when they started.
#include <CLI/CLI.hpp>
#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "scgi/address.hpp"
#include "scgi/log.hpp"
#include "scgi/request_writer.hpp"
#include "scgi/response_head.hpp"
#include "scgi/units.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using Socket = asio::generic::stream_protocol::socket;
using Endpoint = asio::generic::stream_protocol::endpoint;
using asio::use_awaitable;
using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;

constexpr auto kHardStopGrace = std::chrono::seconds(10);  // past the planned end
constexpr auto kLastResort = std::chrono::seconds(2);      // after a hard stop
constexpr std::size_t kReadChunkBytes = 16 * 1024;         // per request in flight
constexpr std::size_t kMaxHeadBytes = 64 * 1024;

// ---- Latency: a log-linear histogram (HDR-like) with bounded memory. ----

// Values below 256 ns are exact; above, 128 sub-buckets per power of two keep
// every reported value within 1/128 (< 0.8 %) of the true one.
class LatencyHistogram {
 public:
  LatencyHistogram() : buckets_(kBuckets, 0) {}

  void record(std::uint64_t ns) {
    ++buckets_[index_of(ns)];
    ++count_;
    sum_ += static_cast<double>(ns);
    max_ = std::max(max_, ns);
  }

  void merge(const LatencyHistogram& other) {
    for (std::size_t i = 0; i < kBuckets; ++i)
      buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    max_ = std::max(max_, other.max_);
  }

  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_); }

  // The smallest recorded value v such that a fraction q of the samples is ≤ v
  // (to the bucket's precision, never above the true maximum).
  std::uint64_t percentile(double q) const {
    if (count_ == 0) return 0;
    const auto rank = std::max<std::uint64_t>(
        1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) return std::min(upper_edge(i), max_);
    }
    return max_;
  }

 private:
  static constexpr int kSubBits = 7;
  static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBits;
  static constexpr std::uint64_t kExact = 2 * kSubBuckets;
  static constexpr std::size_t kBuckets = kExact + (63 - kSubBits) * kSubBuckets;

  static std::size_t index_of(std::uint64_t v) {
    if (v < kExact) return static_cast<std::size_t>(v);
    const int exponent = std::bit_width(v) - 1;  // ≥ kSubBits + 1
    const int shift = exponent - kSubBits;
    const std::uint64_t mantissa = v >> shift;  // in [kSubBuckets, 2 * kSubBuckets)
    return static_cast<std::size_t>(kExact + (exponent - kSubBits - 1) * kSubBuckets +
                                    (mantissa - kSubBuckets));
  }

  static std::uint64_t upper_edge(std::size_t index) {
    if (index < kExact) return index;
    const std::uint64_t j = index - kExact;
    const int shift = static_cast<int>(j / kSubBuckets) + 1;
    const std::uint64_t mantissa = kSubBuckets + j % kSubBuckets;
    return ((mantissa + 1) << shift) - 1;
  }

  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  double sum_ = 0;
  std::uint64_t max_ = 0;
};

// ---- Outcomes of one request. ----

enum class Outcome { ok, connect, reset, timeout, empty, short_response, malformed, bad_status };
constexpr std::array kErrorKinds = {Outcome::connect,   Outcome::reset,          Outcome::timeout,
                                    Outcome::empty,     Outcome::short_response, Outcome::malformed,
                                    Outcome::bad_status};
constexpr std::size_t kOutcomes = 8;

std::string_view outcome_name(Outcome outcome) {
  switch (outcome) {
    case Outcome::ok:
      return "ok";
    case Outcome::connect:
      return "connect";
    case Outcome::reset:
      return "reset";
    case Outcome::timeout:
      return "timeout";
    case Outcome::empty:
      return "empty";
    case Outcome::short_response:
      return "short";
    case Outcome::malformed:
      return "malformed";
    case Outcome::bad_status:
      return "bad_status";
  }
  return "?";
}

struct ExchangeResult {
  Outcome outcome = Outcome::ok;
  int status = 0;
  std::uint64_t bytes = 0;
};

// One request as --request-log writes it. `started` is the scheduled start in
// the open loop (where its latency counts from), the actual one otherwise.
struct RequestRecord {
  Clock::time_point started;
  Clock::duration latency;
  Outcome outcome;
};

// Figures of one class of the workload (or of all of them, merged).
struct ClassStats {
  LatencyHistogram latency;  // successful requests only
  std::array<std::uint64_t, kOutcomes> outcomes{};
  std::map<int, std::uint64_t> bad_status;  // status code → count
  std::uint64_t bytes_received = 0;

  std::uint64_t ok() const { return outcomes[static_cast<std::size_t>(Outcome::ok)]; }
  std::uint64_t errors() const {
    std::uint64_t total = 0;
    for (Outcome kind : kErrorKinds)
      total += outcomes[static_cast<std::size_t>(kind)];
    return total;
  }
  std::uint64_t requests() const { return ok() + errors(); }

  void count(Outcome outcome, int status = 0) {
    ++outcomes[static_cast<std::size_t>(outcome)];
    if (outcome == Outcome::bad_status) ++bad_status[status];
  }

  void merge(const ClassStats& other) {
    latency.merge(other.latency);
    for (std::size_t i = 0; i < kOutcomes; ++i)
      outcomes[i] += other.outcomes[i];
    for (const auto& [status, n] : other.bad_status)
      bad_status[status] += n;
    bytes_received += other.bytes_received;
  }
};

// ---- The workload. ----

struct RequestClass {
  std::string name;  // "/slow?sleep_ms=20", as given
  unsigned weight = 1;
  std::string request;  // the bytes sent, built once
};

struct Target {
  std::string path;
  std::string query;
};

Target split_target(std::string_view text) {
  const std::size_t mark = text.find('?');
  if (mark == std::string_view::npos) return {std::string(text), ""};
  return {std::string(text.substr(0, mark)), std::string(text.substr(mark + 1))};
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return text;
}

// "98:/fast;2:/slow?sleep_ms=20" → (weight, target) pairs.
scgi::Result<std::vector<std::pair<unsigned, std::string>>> parse_mix(std::string_view text) {
  std::vector<std::pair<unsigned, std::string>> entries;
  while (!text.empty()) {
    const std::size_t semicolon = text.find(';');
    const std::string_view entry = trim(text.substr(0, semicolon));
    text = semicolon == std::string_view::npos ? std::string_view() : text.substr(semicolon + 1);
    if (entry.empty()) continue;
    const std::size_t colon = entry.find(':');
    if (colon == std::string_view::npos)
      return scgi::Result<decltype(entries)>::fail(
          fmt::format("--mix entry \"{}\" is not WEIGHT:PATH[?QUERY]", entry));
    const std::string_view weight_text = trim(entry.substr(0, colon));
    unsigned weight = 0;
    const auto [end, ec] =
        std::from_chars(weight_text.data(), weight_text.data() + weight_text.size(), weight);
    if (ec != std::errc() || end != weight_text.data() + weight_text.size() || weight == 0)
      return scgi::Result<decltype(entries)>::fail(
          fmt::format("--mix entry \"{}\": the weight must be a positive whole number", entry));
    const std::string_view target = trim(entry.substr(colon + 1));
    if (target.empty() || target.front() != '/')
      return scgi::Result<decltype(entries)>::fail(
          fmt::format("--mix entry \"{}\": the path must start with /", entry));
    entries.emplace_back(weight, std::string(target));
  }
  if (entries.empty())
    return scgi::Result<decltype(entries)>::fail(
        "--mix has no entries (e.g. \"98:/fast;2:/slow\")");
  return scgi::Result<decltype(entries)>::ok(std::move(entries));
}

struct RequestShape {
  std::string method;
  std::string body;
  std::vector<scgi::OwnedHeader> extra_headers;
};

std::string build_request(const Target& target, const RequestShape& shape) {
  std::vector<scgi::OwnedHeader> headers = {
      {"REQUEST_METHOD", shape.method},
      {"REQUEST_URI", target.query.empty() ? target.path : target.path + "?" + target.query},
      {"QUERY_STRING", target.query},
      {"SERVER_PROTOCOL", "HTTP/1.1"},
      {"REMOTE_ADDR", "127.0.0.1"},
  };
  if (!shape.body.empty()) headers.emplace_back("CONTENT_TYPE", "application/octet-stream");
  headers.insert(headers.end(), shape.extra_headers.begin(), shape.extra_headers.end());
  return scgi::make_request(headers, shape.body);
}

// Everything a run needs, fixed before the first request.
struct Plan {
  std::string target_text;
  Endpoint endpoint;
  std::vector<RequestClass> classes;
  int connections = 0;  // closed loop: loops; open loop: the cap on requests in flight (0: none)
  std::optional<Clock::duration> duration;
  std::optional<std::uint64_t> requests;
  std::optional<double> rate;  // open loop when set
  Clock::duration timeout{};
  std::optional<int> expect_status;
  int threads = 1;
  std::uint64_t seed = 1;
  bool keep_requests = false;  // for --request-log

  bool open_loop() const { return rate.has_value(); }
  // When the last request is started or scheduled, if the run has a time bound.
  std::optional<Clock::duration> planned_length() const {
    std::optional<Clock::duration> length = duration;
    if (rate && requests) {
      const auto by_count = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(*requests) / *rate));
      length = length ? std::min(*length, by_count) : by_count;
    }
    return length;
  }
};

// What one thread does: every thread-th scheduled start, or its share of the
// connections and of the request count.
struct Share {
  int index = 0;
  int stride = 1;
  int connections = 0;
  std::optional<std::uint64_t> requests;  // closed loop
};

// ---- Reading and checking one response. ----

// What happened on the wire, before it is judged.
struct Transcript {
  asio::error_code connect_error;
  asio::error_code write_error;
  asio::error_code read_error;  // anything but the EOF that ends a response
  std::uint64_t bytes = 0;
  scgi::ResponseHeadReader::Status head = scgi::ResponseHeadReader::Status::need_more;
  bool ended_in_head = false;
  int status = 0;
  std::optional<std::uint64_t> content_length;
  std::uint64_t body_bytes = 0;
};

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::optional<std::uint64_t> find_content_length(std::string_view head) {
  while (!head.empty()) {
    const std::size_t newline = head.find('\n');
    std::string_view line = head.substr(0, newline);
    head = newline == std::string_view::npos ? std::string_view() : head.substr(newline + 1);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos ||
        !equals_ignoring_case(trim(line.substr(0, colon)), "Content-Length"))
      continue;
    const std::string_view value = trim(line.substr(colon + 1));
    std::uint64_t length = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
    if (ec == std::errc() && end == value.data() + value.size()) return length;
  }
  return std::nullopt;
}

Outcome judge(const Transcript& t, bool timed_out, std::optional<int> expect_status) {
  if (timed_out) return Outcome::timeout;
  if (t.connect_error) return Outcome::connect;
  if (t.bytes == 0) return t.read_error || t.write_error ? Outcome::reset : Outcome::empty;
  if (t.ended_in_head) return t.read_error ? Outcome::reset : Outcome::short_response;
  if (t.head != scgi::ResponseHeadReader::Status::complete) return Outcome::malformed;
  if (t.content_length) {
    if (t.body_bytes < *t.content_length)
      return t.read_error ? Outcome::reset : Outcome::short_response;
  } else if (t.read_error) {
    return Outcome::reset;  // without a length, only a clean close proves the body whole
  }
  const bool good = expect_status ? t.status == *expect_status : t.status < 400;
  return good ? Outcome::ok : Outcome::bad_status;
}

asio::awaitable<void> send_request(Socket& socket, std::string_view request, Transcript& t) {
  auto [error, written] =
      co_await asio::async_write(socket, asio::buffer(request), as_tuple(use_awaitable));
  // A server may answer early (413) and stop reading: the reader still gets its answer.
  t.write_error = error;
}

asio::awaitable<void> read_response(Socket& socket, Transcript& t) {
  scgi::ResponseHeadReader reader(kMaxHeadBytes);
  std::string head;  // the head's bytes, to find Content-Length in
  std::array<char, kReadChunkBytes> buffer;
  for (;;) {
    auto [error, n] =
        co_await socket.async_read_some(asio::buffer(buffer), as_tuple(use_awaitable));
    if (n > 0) {
      t.bytes += n;
      const std::string_view piece(buffer.data(), n);
      if (reader.status() == scgi::ResponseHeadReader::Status::need_more) {
        head.append(
            piece.substr(0, std::min(n, kMaxHeadBytes - std::min(kMaxHeadBytes, head.size()))));
        if (reader.feed(piece) == scgi::ResponseHeadReader::Status::complete)
          t.content_length =
              find_content_length(std::string_view(head).substr(0, reader.head_bytes()));
      }
    }
    if (error == asio::error::eof) break;
    if (error) {
      t.read_error = error;
      break;
    }
  }
  t.ended_in_head = reader.status() == scgi::ResponseHeadReader::Status::need_more;
  if (t.ended_in_head) reader.finish();
  t.head = reader.status();
  t.status = reader.status_code();
  if (t.head == scgi::ResponseHeadReader::Status::complete)
    t.body_bytes = t.bytes - reader.head_bytes();
}

// ---- One thread's event loop and its requests. ----

class Runner {
 public:
  Runner(const Plan& plan, Share share, Clock::time_point start)
      : plan_(plan),
        share_(share),
        start_(start),
        stats_(plan.classes.size()),
        random_(plan.seed + static_cast<std::uint64_t>(share.index)),
        pick_(by_weight(plan.classes)) {}

  void run();
  // Both may be called from any thread.
  void stop_gracefully() {
    asio::post(context_, [this] { stop_starting(); });
  }
  void stop_now() {
    asio::post(context_, [this] { hard_stop(); });
  }

  const std::vector<ClassStats>& stats() const { return stats_; }
  const std::vector<RequestRecord>& requests() const { return requests_; }
  Clock::time_point ended_at() const { return ended_at_; }

 private:
  // One request in flight: owned by its exchange() frame, listed in live_ so a
  // hard stop reaches it.
  struct Exchange {
    explicit Exchange(asio::io_context& context, Clock::duration timeout)
        : socket(context), timer(context, timeout) {}
    Socket socket;
    asio::steady_timer timer;
    bool finished = false;
    bool timed_out = false;  // by --timeout or by the hard stop
  };

  // A request of the open loop, due at `scheduled`.
  struct Pending {
    Clock::time_point scheduled;
    std::size_t class_index;
  };

  static std::discrete_distribution<std::size_t> by_weight(
      const std::vector<RequestClass>& classes) {
    std::vector<double> weights;
    for (const RequestClass& c : classes)
      weights.push_back(c.weight);
    return std::discrete_distribution<std::size_t>(weights.begin(), weights.end());
  }

  template <class Task>
  void spawn(Task task, const char* what);
  void task_ended();

  asio::awaitable<void> closed_loop();
  bool may_start_closed();
  asio::awaitable<void> open_schedule();
  void launch(Pending pending);
  asio::awaitable<void> open_request(Pending pending);

  asio::awaitable<ExchangeResult> exchange(const RequestClass& request_class);
  asio::awaitable<ExchangeResult> talk(Exchange& exchange, std::string_view request);
  asio::awaitable<void> watchdog(Exchange& exchange);

  void record(std::size_t class_index, const ExchangeResult& result, Clock::time_point started);
  void stop_starting();
  void hard_stop();

  const Plan& plan_;
  const Share share_;
  const Clock::time_point start_;
  asio::io_context context_{1};
  asio::steady_timer schedule_timer_{context_};
  asio::steady_timer hard_stop_timer_{context_};
  std::vector<ClassStats> stats_;
  std::vector<RequestRecord> requests_;  // only with plan_.keep_requests
  std::mt19937_64 random_;
  std::discrete_distribution<std::size_t> pick_;

  std::unordered_set<Exchange*> live_;
  std::deque<Pending> waiting_;  // open loop: due, but the cap on requests in flight is reached
  int in_flight_ = 0;
  int tasks_ = 0;
  std::optional<std::uint64_t> quota_;
  bool stopping_ = false;
  Clock::time_point ended_at_;
};

template <class Task>
void Runner::spawn(Task task, const char* what) {
  ++tasks_;
  asio::co_spawn(context_, std::move(task), [this, what](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& error) {
        scgi::log_error("scgi-load: {} failed: {}", what, error.what());
      }
    }
    task_ended();
  });
}

void Runner::task_ended() {
  if (--tasks_ > 0) return;
  ended_at_ = Clock::now();
  hard_stop_timer_.cancel();  // nothing left to stop: let the event loop end
}

void Runner::run() {
  quota_ = share_.requests;
  if (plan_.open_loop()) {
    spawn(open_schedule(), "the schedule");
  } else {
    for (int i = 0; i < share_.connections; ++i)
      spawn(closed_loop(), "a connection loop");
  }
  if (const auto length = plan_.planned_length()) {
    hard_stop_timer_.expires_at(start_ + *length + kHardStopGrace);
    hard_stop_timer_.async_wait([this](asio::error_code error) {
      if (!error) hard_stop();
    });
  }
  context_.run();
  if (ended_at_ == Clock::time_point()) ended_at_ = Clock::now();
}

bool Runner::may_start_closed() {
  if (stopping_) return false;
  if (plan_.duration && Clock::now() >= start_ + *plan_.duration) return false;
  if (quota_) {
    if (*quota_ == 0) return false;
    --*quota_;
  }
  return true;
}

asio::awaitable<void> Runner::closed_loop() {
  while (may_start_closed()) {
    const std::size_t class_index = pick_(random_);
    const auto started = Clock::now();
    const ExchangeResult result = co_await exchange(plan_.classes[class_index]);
    record(class_index, result, started);
  }
}

asio::awaitable<void> Runner::open_schedule() {
  const double ns_per_request = 1e9 / *plan_.rate;
  for (auto k = static_cast<std::uint64_t>(share_.index);;
       k += static_cast<std::uint64_t>(share_.stride)) {
    if (plan_.requests && k >= *plan_.requests) break;
    const auto scheduled =
        start_ + std::chrono::nanoseconds(std::llround(static_cast<double>(k) * ns_per_request));
    if (plan_.duration && scheduled >= start_ + *plan_.duration) break;
    schedule_timer_.expires_at(scheduled);
    co_await schedule_timer_.async_wait(as_tuple(use_awaitable));
    if (stopping_) break;
    const Pending pending{scheduled, pick_(random_)};
    if (share_.connections == 0 || in_flight_ < share_.connections) {
      launch(pending);
    } else {
      waiting_.push_back(pending);  // its latency keeps counting from `scheduled`
    }
  }
}

void Runner::launch(Pending pending) {
  ++in_flight_;
  spawn(open_request(pending), "a request");
}

asio::awaitable<void> Runner::open_request(Pending pending) {
  const ExchangeResult result = co_await exchange(plan_.classes[pending.class_index]);
  record(pending.class_index, result, pending.scheduled);
  --in_flight_;
  // The freed slot goes to the oldest request that is due.
  if (!waiting_.empty() && !stopping_) {
    const Pending next = waiting_.front();
    waiting_.pop_front();
    launch(next);
  }
}

asio::awaitable<ExchangeResult> Runner::exchange(const RequestClass& request_class) {
  Exchange exchange(context_, plan_.timeout);
  // Listed for the hard stop for exactly as long as it lives, even if a step throws.
  struct Listing {
    std::unordered_set<Exchange*>& live;
    Exchange* exchange;
    ~Listing() { live.erase(exchange); }
  } listing{live_, &exchange};
  live_.insert(&exchange);
  co_return co_await (talk(exchange, request_class.request) && watchdog(exchange));
}

asio::awaitable<ExchangeResult> Runner::talk(Exchange& exchange, std::string_view request) {
  Transcript t;
  auto [connect_error] =
      co_await exchange.socket.async_connect(plan_.endpoint, as_tuple(use_awaitable));
  t.connect_error = connect_error;
  // Sending and reading at once: a server may stream its answer (echo=1)
  // before it has read the whole body.
  if (!connect_error)
    co_await (send_request(exchange.socket, request, t) && read_response(exchange.socket, t));
  exchange.finished = true;
  exchange.timer.cancel();
  const Outcome outcome = judge(t, exchange.timed_out, plan_.expect_status);
  co_return ExchangeResult{outcome, t.status, t.bytes};
}

asio::awaitable<void> Runner::watchdog(Exchange& exchange) {
  auto [error] = co_await exchange.timer.async_wait(as_tuple(use_awaitable));
  if (error || exchange.finished) co_return;
  exchange.timed_out = true;
  asio::error_code ignored;
  exchange.socket.close(ignored);  // the pending connect, write and read end at once
}

void Runner::record(std::size_t class_index, const ExchangeResult& result,
                    Clock::time_point started) {
  const Clock::duration latency = Clock::now() - started;
  if (plan_.keep_requests) requests_.push_back({started, latency, result.outcome});
  ClassStats& stats = stats_[class_index];
  stats.count(result.outcome, result.status);
  stats.bytes_received += result.bytes;
  if (result.outcome == Outcome::ok)
    stats.latency.record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(latency).count()));
}

// No new requests; those in flight finish (within --timeout).
void Runner::stop_starting() {
  stopping_ = true;
  schedule_timer_.cancel();
  waiting_.clear();
}

// The planned end plus the grace has passed: every request still in flight or
// still waiting is a timeout.
void Runner::hard_stop() {
  stopping_ = true;
  schedule_timer_.cancel();
  for (const Pending& pending : waiting_)
    record(pending.class_index, ExchangeResult{Outcome::timeout}, pending.scheduled);
  waiting_.clear();
  for (Exchange* exchange : live_) {
    exchange->timed_out = true;
    asio::error_code ignored;
    exchange->socket.close(ignored);
  }
  if (tasks_ == 0) return;
  hard_stop_timer_.expires_after(kLastResort);
  hard_stop_timer_.async_wait([this](asio::error_code error) {
    if (!error) context_.stop();
  });
}

// ---- The report. ----

struct Report {
  const Plan& plan;
  std::vector<ClassStats> classes;
  ClassStats all;
  double seconds = 0;
};

double ms(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

constexpr std::array<std::pair<const char*, double>, 4> kPercentiles = {
    {{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p99_9", 0.999}}};

nlohmann::ordered_json stats_json(const ClassStats& stats, double seconds) {
  nlohmann::ordered_json json;
  json["requests"] = stats.requests();
  json["ok"] = stats.ok();
  json["errors"] = stats.errors();
  json["throughput_rps"] = seconds > 0 ? static_cast<double>(stats.requests()) / seconds : 0.0;
  json["bytes_received"] = stats.bytes_received;
  nlohmann::ordered_json latency;
  for (const auto& [name, q] : kPercentiles)
    latency[name] = ms(stats.latency.percentile(q));
  latency["max"] = ms(stats.latency.max());
  latency["mean"] = stats.latency.mean() / 1e6;
  json["latency_ms"] = latency;
  nlohmann::ordered_json kinds;
  for (Outcome kind : kErrorKinds) {
    if (kind == Outcome::bad_status) continue;
    kinds[std::string(outcome_name(kind))] = stats.outcomes[static_cast<std::size_t>(kind)];
  }
  nlohmann::ordered_json statuses = nlohmann::ordered_json::object();
  for (const auto& [status, n] : stats.bad_status)
    statuses[std::to_string(status)] = n;
  kinds["bad_status"] = statuses;
  json["error_kinds"] = kinds;
  return json;
}

void print_json(const Report& report) {
  const Plan& plan = report.plan;
  nlohmann::ordered_json json;
  json["target"] = plan.target_text;
  json["mode"] = plan.open_loop() ? "open" : "closed";
  json["connections"] = plan.connections;
  json["rate"] = plan.rate ? nlohmann::ordered_json(*plan.rate) : nlohmann::ordered_json();
  json["threads"] = plan.threads;
  json["duration_s"] = report.seconds;
  json.update(stats_json(report.all, report.seconds));
  nlohmann::ordered_json classes = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < report.classes.size(); ++i) {
    nlohmann::ordered_json c;
    c["name"] = plan.classes[i].name;
    c["weight"] = plan.classes[i].weight;
    c.update(stats_json(report.classes[i], report.seconds));
    classes.push_back(c);
  }
  json["classes"] = classes;
  std::cout << json.dump() << '\n';
}

std::string error_summary(const ClassStats& stats) {
  std::string text;
  for (Outcome kind : kErrorKinds) {
    const std::uint64_t n = stats.outcomes[static_cast<std::size_t>(kind)];
    if (n == 0) continue;
    if (kind == Outcome::bad_status) {
      for (const auto& [status, count] : stats.bad_status)
        text += fmt::format("{}status {}: {}", text.empty() ? "" : ", ", status, count);
    } else {
      text += fmt::format("{}{}: {}", text.empty() ? "" : ", ", outcome_name(kind), n);
    }
  }
  return text.empty() ? "none" : text;
}

std::string latency_row(std::string_view name, const ClassStats& stats) {
  std::string row = fmt::format("  {:<28} {:>9} {:>7}", name, stats.ok(), stats.errors());
  for (const auto& [label, q] : kPercentiles)
    row += fmt::format(" {:>8.3f}", ms(stats.latency.percentile(q)));
  return row + fmt::format(" {:>8.3f}\n", ms(stats.latency.max()));
}

void print_table(const Report& report) {
  const Plan& plan = report.plan;
  const std::string mode =
      plan.open_loop()
          ? fmt::format("open loop, {} req/s scheduled, {}", *plan.rate,
                        plan.connections > 0 ? fmt::format("at most {} in flight", plan.connections)
                                             : std::string("no cap on requests in flight"))
          : fmt::format("closed loop, {} connection{}", plan.connections,
                        plan.connections == 1 ? "" : "s");
  std::string text;
  text += fmt::format("target      {}\n", plan.target_text);
  text += fmt::format("mode        {}, {} thread{}\n", mode, plan.threads,
                      plan.threads == 1 ? "" : "s");
  text += fmt::format("duration    {:.2f} s\n", report.seconds);
  text += fmt::format("requests    {} (ok {}, errors {})\n", report.all.requests(), report.all.ok(),
                      report.all.errors());
  text += fmt::format(
      "throughput  {:.1f} req/s, {:.2f} MB/s received\n",
      report.seconds > 0 ? static_cast<double>(report.all.requests()) / report.seconds : 0.0,
      report.seconds > 0 ? static_cast<double>(report.all.bytes_received) / 1e6 / report.seconds
                         : 0.0);
  text += fmt::format("errors      {}\n", error_summary(report.all));
  text += fmt::format("\nlatency of successful requests (ms{}):\n",
                      plan.open_loop() ? ", from the scheduled start" : "");
  text += fmt::format("  {:<28} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}\n", "class", "ok",
                      "errors", "p50", "p90", "p99", "p99.9", "max");
  text += latency_row("all", report.all);
  if (report.classes.size() > 1) {
    for (std::size_t i = 0; i < report.classes.size(); ++i) {
      text += latency_row(fmt::format("{}:{}", plan.classes[i].weight, plan.classes[i].name),
                          report.classes[i]);
    }
    for (std::size_t i = 0; i < report.classes.size(); ++i) {
      if (report.classes[i].errors() == 0) continue;
      text +=
          fmt::format("errors of {}: {}\n", plan.classes[i].name, error_summary(report.classes[i]));
    }
  }
  std::cout << text << std::flush;
}

// ---- The command line. ----

template <class T>
T parsed_or_exit(scgi::Result<T> result, std::string_view option) {
  if (!result) {
    std::cerr << "scgi-load: " << option << ": " << result.error() << '\n';
    std::exit(2);
  }
  return std::move(result).value();
}

Endpoint resolve(const scgi::Address& address) {
  if (address.is_unix()) return Endpoint(asio::local::stream_protocol::endpoint(address.path));
  asio::io_context context;
  asio::ip::tcp::resolver resolver(context);
  asio::error_code error;
  const auto found = resolver.resolve(address.host, std::to_string(address.port), error);
  if (error || found.empty()) {
    std::cerr << "scgi-load: cannot resolve " << address.to_string() << ": " << error.message()
              << '\n';
    std::exit(2);
  }
  return Endpoint(found.begin()->endpoint());
}

// --request-log: one line per request, in order of start: its start as Unix
// seconds (the steady clock's times placed on the wall clock through the
// run's start, to compare with a daemon's log timestamps), its latency in ms
// and its outcome ("ok" or the error kind).
bool write_request_log(const std::string& path, std::vector<RequestRecord> records,
                       Clock::time_point start, std::chrono::system_clock::time_point start_wall) {
  std::sort(records.begin(), records.end(),
            [](const RequestRecord& a, const RequestRecord& b) { return a.started < b.started; });
  std::ofstream out(path, std::ios::trunc);
  const double wall_start_s = std::chrono::duration<double>(start_wall.time_since_epoch()).count();
  for (const RequestRecord& record : records) {
    const double started_s =
        wall_start_s + std::chrono::duration<double>(record.started - start).count();
    out << fmt::format("{:.6f} {:.3f} {}\n", started_s,
                       std::chrono::duration<double, std::milli>(record.latency).count(),
                       outcome_name(record.outcome));
  }
  out.flush();
  return static_cast<bool>(out);
}

// Splits `total` as evenly as possible; part `index` of `parts`.
std::uint64_t share_of(std::uint64_t total, int parts, int index) {
  const auto p = static_cast<std::uint64_t>(parts);
  const auto i = static_cast<std::uint64_t>(index);
  return total / p + (i < total % p ? 1 : 0);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "SCGI load generator: closed loop (--connections) or open loop (--rate), with a workload "
      "mix, latency percentiles and errors by kind.",
      "scgi-load"};
  std::string connect_text, duration_text, timeout_text = "10s", body_size_text = "0";
  std::string request_log;
  std::string path = "/", query, mix_text, method;
  std::vector<std::string> header_texts;
  std::optional<int> connections;
  std::optional<std::uint64_t> requests, max_errors;
  std::optional<double> rate;
  std::optional<int> expect_status;
  int threads = 1;
  std::uint64_t seed = 1;
  bool json = false;

  app.add_option("--connect", connect_text, "Server: 127.0.0.1:PORT, [::1]:PORT or unix:/path")
      ->required();
  app.add_option("--connections", connections,
                 "Closed loop: concurrent loops (default 8). Open loop: cap on requests in "
                 "flight, later ones wait (default: no cap)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--duration", duration_text,
                 "How long to start requests, e.g. 10s (default 10s unless --requests)");
  app.add_option("--requests", requests, "Total requests to send")->check(CLI::PositiveNumber);
  app.add_option("--rate", rate, "Open loop: requests per second at fixed scheduled times")
      ->check(CLI::PositiveNumber);
  auto* path_option = app.add_option("--path", path, "REQUEST_URI path (default /)");
  auto* query_option = app.add_option("--query", query, "QUERY_STRING, e.g. \"sleep_ms=5\"");
  app.add_option("--mix", mix_text,
                 "Weighted workload, e.g. \"98:/fast;2:/slow?sleep_ms=20\"; reported per class")
      ->excludes(path_option)
      ->excludes(query_option);
  app.add_option("--body-size", body_size_text, "Request body size, e.g. 4096 or 1MiB");
  app.add_option("--method", method, "REQUEST_METHOD (default GET, POST with a body)");
  app.add_option("--header", header_texts, "Extra SCGI header NAME=VALUE (repeatable)");
  app.add_option("--timeout", timeout_text, "Per-request timeout, counted as a timeout error");
  app.add_option("--expect-status", expect_status,
                 "The only status that counts as success (default: any below 400)");
  app.add_option("--threads", threads, "Event-loop threads (default 1)")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "Seed of the workload mix's random choice");
  app.add_option("--max-errors", max_errors, "Exit 1 when more errors than this occur");
  app.add_flag("--json", json, "Print one JSON object instead of the table");
  app.add_option("--request-log", request_log,
                 "At the end, write one line per request to this file: its start (Unix seconds; "
                 "the scheduled one in the open loop), latency in ms, outcome");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 2;
  }

  Plan plan;
  plan.target_text = connect_text;
  plan.endpoint = resolve(parsed_or_exit(scgi::parse_address(connect_text), "--connect"));
  plan.rate = rate;
  plan.requests = requests;
  if (!duration_text.empty()) {
    plan.duration = parsed_or_exit(scgi::parse_duration(duration_text), "--duration");
  } else if (!requests) {
    plan.duration = std::chrono::seconds(10);
  }
  plan.timeout = parsed_or_exit(scgi::parse_duration(timeout_text), "--timeout");
  plan.connections = connections.value_or(plan.open_loop() ? 0 : 8);
  if (!plan.open_loop() && plan.connections == 0) {
    std::cerr << "scgi-load: a closed loop needs --connections of at least 1\n";
    return 2;
  }
  plan.expect_status = expect_status;
  plan.seed = seed;
  plan.keep_requests = !request_log.empty();
  plan.threads = plan.connections > 0 ? std::min(threads, plan.connections) : threads;

  RequestShape shape;
  const std::uint64_t body_size = parsed_or_exit(scgi::parse_size(body_size_text), "--body-size");
  shape.body.resize(body_size);
  for (std::size_t i = 0; i < shape.body.size(); ++i)
    shape.body[i] = static_cast<char>('a' + i % 26);
  shape.method = !method.empty() ? method : body_size > 0 ? "POST" : "GET";
  for (const std::string& text : header_texts) {
    const std::size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "scgi-load: --header \"" << text << "\" is not NAME=VALUE\n";
      return 2;
    }
    shape.extra_headers.emplace_back(text.substr(0, eq), text.substr(eq + 1));
  }
  std::vector<std::pair<unsigned, std::string>> mix;
  if (!mix_text.empty()) {
    mix = parsed_or_exit(parse_mix(mix_text), "--mix");
  } else {
    mix.emplace_back(1, query.empty() ? path : path + "?" + query);
  }
  for (const auto& [weight, target] : mix)
    plan.classes.push_back({target, weight, build_request(split_target(target), shape)});

  // Every thread runs its own share; the main thread only watches for signals.
  const auto start = Clock::now();
  const auto start_wall = std::chrono::system_clock::now();
  std::vector<std::unique_ptr<Runner>> runners;
  for (int i = 0; i < plan.threads; ++i) {
    Share share;
    share.index = i;
    share.stride = plan.threads;
    share.connections =
        static_cast<int>(share_of(static_cast<std::uint64_t>(plan.connections), plan.threads, i));
    if (requests && !plan.open_loop()) share.requests = share_of(*requests, plan.threads, i);
    runners.push_back(std::make_unique<Runner>(plan, share, start));
  }

  asio::io_context control;
  asio::signal_set signals(control, SIGINT, SIGTERM);
  int running = plan.threads;
  int signals_seen = 0;
  std::function<void(asio::error_code, int)> on_signal = [&](asio::error_code error, int) {
    if (error) return;
    // First signal: start nothing new and report; second: stop at once.
    const bool first = ++signals_seen == 1;
    for (auto& runner : runners)
      first ? runner->stop_gracefully() : runner->stop_now();
    signals.async_wait(on_signal);
  };
  signals.async_wait(on_signal);

  std::vector<std::thread> workers;
  for (auto& runner : runners) {
    workers.emplace_back([&control, &running, &signals, &runner] {
      runner->run();
      asio::post(control, [&running, &signals] {
        if (--running == 0) signals.cancel();
      });
    });
  }
  control.run();
  for (std::thread& worker : workers)
    worker.join();

  Report report{plan, std::vector<ClassStats>(plan.classes.size()), ClassStats(), 0};
  Clock::time_point ended = start;
  for (const auto& runner : runners) {
    for (std::size_t i = 0; i < plan.classes.size(); ++i)
      report.classes[i].merge(runner->stats()[i]);
    ended = std::max(ended, runner->ended_at());
  }
  for (const ClassStats& stats : report.classes)
    report.all.merge(stats);
  report.seconds = std::chrono::duration<double>(ended - start).count();

  if (!request_log.empty()) {
    std::vector<RequestRecord> records;
    for (const auto& runner : runners)
      records.insert(records.end(), runner->requests().begin(), runner->requests().end());
    if (!write_request_log(request_log, std::move(records), start, start_wall)) {
      std::cerr << "scgi-load: cannot write --request-log " << request_log << '\n';
      return 2;
    }
  }

  if (json) {
    print_json(report);
  } else {
    print_table(report);
  }
  return max_errors && report.all.errors() > *max_errors ? 1 : 0;
}
