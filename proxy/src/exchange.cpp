#include "scgi/proxy/exchange.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <array>
#include <memory>
#include <vector>

#include "scgi/error_response.hpp"
#include "scgi/log.hpp"
#include "scgi/proxy/access_log.hpp"
#include "scgi/proxy/pool.hpp"
#include "scgi/proxy/watchdog.hpp"
#include "scgi/request_parser.hpp"
#include "scgi/response_head.hpp"

namespace scgi::proxy {
namespace {

using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = as_tuple(asio::use_awaitable);

constexpr std::size_t kTransferBufferBytes = 16 * 1024;
constexpr std::size_t kEarlyBodyBytes = 16 * 1024;
constexpr int kClientClosedStatus = 499;  // nginx's convention for "the client left first"

// Header bytes are read straight after the socket reports them readable, with
// no suspension in between, so one buffer per thread serves every exchange:
// an idle connection holds no buffer at all.
thread_local std::array<char, 16 * 1024> t_header_buffer;

using Gather = std::array<asio::const_buffer, 2>;

// Sends what the socket takes right now (it is non-blocking) and advances
// `buffers` past it; would_block means the rest must wait. Most writes of a
// proxy fit the socket buffer, and this spares them a suspension and a timer.
asio::error_code send_now(Socket& socket, Gather& buffers) {
  asio::error_code ec;
  while (!ec && asio::buffer_size(buffers) > 0) {
    std::size_t sent = socket.write_some(buffers, ec);
    for (auto& buffer : buffers) {
      const std::size_t used = std::min(sent, buffer.size());
      buffer += used;
      sent -= used;
    }
  }
  return ec;
}

class Exchange {
 public:
  Exchange(Socket client, std::shared_ptr<Pool> pool, const AccessLog& access_log)
      : client_(std::move(client)),
        pool_(std::move(pool)),
        settings_(pool_->settings()),
        access_log_(access_log),
        parser_({.max_header_bytes = settings_->max_header_bytes,
                 .max_body_bytes = settings_->max_body_bytes}),
        client_watch_(client_.get_executor(), [this] { cancel_all(); }),
        backend_watch_(client_.get_executor(), [this] { cancel_backend(); }) {}

  asio::awaitable<void> run() {
    // Reads right after a readiness report, and send_now(), must never block the thread.
    asio::error_code ignored;
    client_.non_blocking(true, ignored);
    co_await serve();
    client_watch_.stop();
    backend_watch_.stop();
    finish();
  }

 private:
  asio::awaitable<void> serve();
  asio::awaitable<bool> read_header();
  asio::awaitable<bool> connect(Lease& lease);
  asio::awaitable<bool> send_head();
  asio::awaitable<void> upload_body();
  asio::awaitable<void> relay();
  // Sends `buffers` to `socket`, waiting under `watch` (for `timeout`) only
  // for what does not go out at once.
  asio::awaitable<asio::error_code> send(Socket& socket, Gather buffers, Watchdog& watch,
                                         Milliseconds timeout);
  asio::awaitable<void> reply(int status, std::string_view detail, bool retry_after = false);
  void cancel_all() {
    asio::error_code ignored;
    client_.cancel(ignored);
    cancel_backend();
  }
  void cancel_backend() {
    asio::error_code ignored;
    if (backend_) backend_->cancel(ignored);
  }
  void finish();

  Socket client_;
  std::shared_ptr<Pool> pool_;
  std::shared_ptr<const PoolConfig> settings_;
  const AccessLog& access_log_;
  RequestParser parser_;
  Watchdog client_watch_;   // client silence: header, body gaps, writes to a slow client
  Watchdog backend_watch_;  // backend silence: connect, response
  std::optional<Socket> backend_;
  Lease lease_;
  std::shared_ptr<Backend> served_by_;  // for the access log, after the lease is given back

  std::vector<char> early_body_;      // body bytes read with the header or while queued
  std::uint64_t body_remaining_ = 0;  // body bytes still to read from the client
  bool upload_done_ = false;
  bool relay_done_ = false;
  ResponseHeadReader response_head_;

  // What happened, for metrics and the access log.
  Clock::time_point started_ = Clock::now();
  bool silent_ = false;  // a connection that sent nothing: not a request
  int status_ = 0;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::uint64_t sent_to_client_ = 0;
  std::chrono::nanoseconds queue_wait_{0};
};

asio::awaitable<void> Exchange::serve() {
  if (!co_await read_header()) co_return;

  // Take a slot; a connect that fails is retried on another backend, once each.
  std::vector<Backend*> tried;
  for (;;) {
    Acquisition acquired;
    if (Lease lease = pool_->try_acquire(tried)) {
      acquired.outcome = AcquireOutcome::granted;  // the common case: no coroutine, no wait
      acquired.lease = std::move(lease);
    } else {
      acquired = co_await pool_->acquire(client_, tried, early_body_, body_remaining_);
    }
    queue_wait_ += acquired.waited;
    if (acquired.queued) pool_->stats().observe_queue_wait(acquired.waited);
    if (acquired.outcome == AcquireOutcome::granted) {
      lease_ = std::move(acquired.lease);
      if (co_await connect(lease_)) break;
      tried.push_back(&lease_.backend());
      lease_.reset();
      pool_->stats().count_retry();
      continue;
    }
    switch (acquired.outcome) {
      case AcquireOutcome::queue_full:
        pool_->stats().count_rejected(RejectReason::queue_full);
        co_await reply(503, "every backend is busy and the queue is full", true);
        break;
      case AcquireOutcome::queue_timeout:
        pool_->stats().count_rejected(RejectReason::queue_timeout);
        co_await reply(503, "no backend became free within queue_timeout", true);
        break;
      case AcquireOutcome::client_closed:
        pool_->stats().count_rejected(RejectReason::client_closed);
        status_ = kClientClosedStatus;
        break;
      case AcquireOutcome::no_backend:
        if (tried.empty()) {
          co_await reply(503, "no backend is up", true);
        } else {
          log_warn("pool {}: every backend failed to connect ({} tried); answered 502",
                   pool_->name(), tried.size());
          co_await reply(502, "no backend could be reached");
        }
        break;
      case AcquireOutcome::granted:
        break;
    }
    co_return;
  }

  lease_.backend().count_request();
  if (access_log_.enabled()) served_by_ = lease_.backend_ptr();
  if (!co_await send_head()) {
    co_await relay();  // the backend stopped reading; it may still have answered
  } else if (body_remaining_ == 0) {
    co_await relay();
  } else {
    // Full duplex: a backend may answer while the body still streams in.
    co_await (upload_body() && relay());
  }
}

asio::awaitable<asio::error_code> Exchange::send(Socket& socket, Gather buffers, Watchdog& watch,
                                                 Milliseconds timeout) {
  asio::error_code ec = send_now(socket, buffers);
  if (ec != asio::error::would_block) co_return ec;
  watch.arm(timeout);
  std::tie(ec, std::ignore) = co_await asio::async_write(socket, buffers, use_tuple);
  co_return ec;
}

asio::awaitable<bool> Exchange::read_header() {
  // The whole header must arrive within client_timeout of the accept: no slowloris.
  const auto deadline = started_ + settings_->client_timeout;
  std::size_t received = 0;
  while (parser_.status() == RequestParser::Status::need_more) {
    // Read first: the header usually came with the connection. Wait only if not.
    asio::error_code ec;
    std::size_t n = client_.read_some(asio::buffer(t_header_buffer), ec);
    if (ec == asio::error::would_block) {
      client_watch_.arm_until(deadline);
      std::tie(ec) = co_await client_.async_wait(Socket::wait_read, use_tuple);
      if (!ec) continue;
    }
    if (ec || n == 0) {
      if (received == 0 && !client_watch_.expired()) {
        silent_ = true;  // a health check or port scan: normal, not an error
      } else if (client_watch_.expired()) {
        log_warn("pool {}: client sent {} header bytes in client_timeout ({}); closed",
                 pool_->name(), received, format_duration(settings_->client_timeout));
        status_ = 408;
      } else {
        status_ = kClientClosedStatus;
      }
      co_return false;
    }
    received += n;
    bytes_in_ += n;
    const std::string_view piece(t_header_buffer.data(), n);
    const auto fed = parser_.feed(piece);
    if (fed.status == RequestParser::Status::complete) {
      // What came after the header is the start of the body (never past its end).
      body_remaining_ = parser_.content_length();
      const auto early = std::min<std::uint64_t>(n - fed.consumed, body_remaining_);
      early_body_.reserve(
          std::max<std::size_t>(early, std::min<std::uint64_t>(kEarlyBodyBytes, body_remaining_)));
      early_body_.assign(piece.begin() + fed.consumed, piece.begin() + fed.consumed + early);
      body_remaining_ -= early;
    }
  }
  client_watch_.disarm();

  if (parser_.status() == RequestParser::Status::error) {
    const RequestError error = parser_.error();
    log_warn("pool {}: rejected a request ({}): {}", pool_->name(), http_status(error),
             describe(error));
    pool_->stats().count_rejected(error == RequestError::body_too_large ||
                                          error == RequestError::header_too_large
                                      ? RejectReason::too_large
                                      : RejectReason::bad_request);
    co_await reply(http_status(error), describe(error));
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> Exchange::connect(Lease& lease) {
  Backend& backend = lease.backend();
  for (const Endpoint& endpoint : backend.endpoints()) {
    backend_.emplace(client_.get_executor());
    backend_watch_.arm(settings_->connect_timeout);
    auto [ec] = co_await backend_->async_connect(endpoint, use_tuple);
    const bool timed_out = backend_watch_.expired();
    backend_watch_.disarm();
    if (!ec) {
      // send_now() must never block the thread: a backend that stops reading
      // while it answers would otherwise stall every exchange on it.
      asio::error_code ignored;
      backend_->non_blocking(true, ignored);
      if (endpoint.protocol().family() != AF_UNIX) set_no_delay(*backend_);
      if (backend.record_connect_success()) {
        log_info("pool {}: backend {} is up again", pool_->name(), backend.name());
        pool_->backend_changed();
      }
      co_return true;
    }
    if (timed_out) backend.count_error(BackendErrorKind::timeout);
    log_warn("pool {}: cannot connect to backend {}: {}", pool_->name(), backend.name(),
             timed_out ? "connect_timeout (" + format_duration(settings_->connect_timeout) + ")"
                       : ec.message());
  }
  backend_.reset();
  if (backend.record_connect_failure()) {
    log_warn("pool {}: backend {} marked down after {} failed connects in a row", pool_->name(),
             backend.name(), Backend::kFailuresToMarkDown);
    if (pool_->events().down) pool_->events().down(*pool_, lease.backend_ptr());
  }
  co_return false;
}

asio::awaitable<bool> Exchange::send_head() {
  // The header exactly as received, with whatever body came along.
  const asio::error_code ec =
      co_await send(*backend_, {asio::buffer(parser_.raw_header()), asio::buffer(early_body_)},
                    client_watch_, settings_->request_timeout);
  client_watch_.disarm();
  if (ec) {
    upload_done_ = true;
    co_return false;
  }
  if (body_remaining_ == 0) {
    upload_done_ = true;
    backend_watch_.arm(settings_->request_timeout);  // from here the backend owes an answer
  }
  co_return true;
}

asio::awaitable<void> Exchange::upload_body() {
  // Uninitialised on purpose: zero-filling 16 KiB per request shows in profiles.
  const std::size_t buffer_size = std::min<std::uint64_t>(kTransferBufferBytes, body_remaining_);
  const auto buffer = std::make_unique_for_overwrite<char[]>(buffer_size);
  asio::error_code ec;
  while (!ec && body_remaining_ > 0) {
    client_watch_.arm(settings_->client_timeout);  // no gap in the body may last longer
    const std::size_t want = std::min<std::uint64_t>(buffer_size, body_remaining_);
    auto [read_error, n] =
        co_await client_.async_read_some(asio::buffer(buffer.get(), want), use_tuple);
    if (read_error || n == 0) {
      if (!relay_done_) {
        if (client_watch_.expired())
          log_warn("pool {}: client sent no body byte for client_timeout ({}); closed",
                   pool_->name(), format_duration(settings_->client_timeout));
        status_ = client_watch_.expired() ? 408 : kClientClosedStatus;
        cancel_all();
      }
      co_return;
    }
    bytes_in_ += n;
    body_remaining_ -= n;
    ec = co_await send(*backend_, {asio::buffer(buffer.get(), n), asio::const_buffer()},
                       client_watch_, settings_->request_timeout);
  }
  client_watch_.disarm();
  upload_done_ = true;
  if (ec) co_return;  // the backend stopped reading; it may still have answered: relay() decides
  backend_watch_.arm(settings_->request_timeout);  // from here the backend owes an answer
}

asio::awaitable<void> Exchange::relay() {
  const auto buffer = std::make_unique_for_overwrite<char[]>(kTransferBufferBytes);
  for (;;) {
    auto [ec, n] = co_await backend_->async_read_some(
        asio::buffer(buffer.get(), kTransferBufferBytes), use_tuple);
    if (ec || n == 0) {
      if (ec == asio::error::eof) {
        response_head_.finish();
      } else if (backend_watch_.expired()) {
        lease_.backend().count_error(BackendErrorKind::timeout);
        log_warn("pool {}: backend {} sent nothing for request_timeout ({}) on {}", pool_->name(),
                 lease_.backend().name(), format_duration(settings_->request_timeout),
                 parser_.find("REQUEST_URI"));
        if (sent_to_client_ == 0) co_await reply(504, "the backend did not answer in time");
        if (pool_->events().timed_out)
          pool_->events().timed_out(*pool_, lease_.backend_ptr(), parser_.find("REQUEST_URI"),
                                    Clock::now() - started_);
      } else if (ec != asio::error::operation_aborted) {
        lease_.backend().count_error(BackendErrorKind::reset);
      }
      break;
    }
    if (upload_done_) backend_watch_.arm(settings_->request_timeout);
    response_head_.feed(std::string_view(buffer.get(), n));
    const asio::error_code write_error =
        co_await send(client_, {asio::buffer(buffer.get(), n), asio::const_buffer()}, client_watch_,
                      settings_->client_timeout);
    if (upload_done_) client_watch_.disarm();  // else the upload's deadline still runs
    if (write_error) {
      if (sent_to_client_ == 0) status_ = kClientClosedStatus;
      cancel_all();
      break;
    }
    sent_to_client_ += n;
    bytes_out_ += n;
  }
  relay_done_ = true;
  if (status_ == 0) {
    if (sent_to_client_ > 0) {
      status_ = response_head_.status_code();
    } else {
      log_warn("pool {}: backend {} closed without answering {}", pool_->name(),
               lease_.backend().name(), parser_.find("REQUEST_URI"));
      co_await reply(502, "the backend closed the connection without answering");
    }
  }
  if (!upload_done_) cancel_all();  // answered early: the rest of the body is not needed
}

asio::awaitable<void> Exchange::reply(int status, std::string_view detail, bool retry_after) {
  status_ = status;
  const std::string response =
      error_response(status, detail, retry_after ? std::optional<int>(1) : std::nullopt);
  const asio::error_code ec = co_await send(client_, {asio::buffer(response), asio::const_buffer()},
                                            client_watch_, settings_->client_timeout);
  client_watch_.disarm();
  if (!ec) bytes_out_ += response.size();
}

void Exchange::finish() {
  asio::error_code ignored;
  if (backend_) backend_->close(ignored);
  client_.shutdown(Socket::shutdown_send, ignored);
  client_.close(ignored);
  lease_.reset();  // first: a waiting request gets the slot without delay
  if (silent_) return;

  const auto total = Clock::now() - started_;
  PoolStats& stats = pool_->stats();
  stats.count_request(status_, total);
  stats.add_bytes(bytes_in_, bytes_out_);
  if (access_log_.enabled()) {
    access_log_.write({.pool = pool_->name(),
                       .backend = served_by_ ? std::string_view(served_by_->name()) : "",
                       .status = status_,
                       .bytes_in = bytes_in_,
                       .bytes_out = bytes_out_,
                       .queue_ms = std::chrono::duration<double, std::milli>(queue_wait_).count(),
                       .total_ms = std::chrono::duration<double, std::milli>(total).count(),
                       .method = parser_.find("REQUEST_METHOD"),
                       .uri = parser_.find("REQUEST_URI")});
  }
}

}  // namespace

asio::awaitable<void> run_exchange(Socket client, std::shared_ptr<Pool> pool,
                                   const AccessLog& access_log) {
  Exchange exchange(std::move(client), std::move(pool), access_log);
  co_await exchange.run();
}

}  // namespace scgi::proxy
