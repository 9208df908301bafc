#include "exchange.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/post.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <memory>
#include <optional>
#include <tuple>
#include <variant>
#include <vector>

#include "access_log.hpp"
#include "byte_ring.hpp"
#include "client_budget.hpp"
#include "forwarded_head.hpp"
#include "local_shortage.hpp"
#include "response_spill.hpp"
#include "scgi/error_response.hpp"
#include "scgi/log.hpp"
#include "scgi/proxy/pool.hpp"
#include "scgi/request_parser.hpp"
#include "scgi/response_head.hpp"
#include "watchdog.hpp"

namespace scgi::proxy {
namespace {

using asio::experimental::as_tuple;
using namespace asio::experimental::awaitable_operators;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = as_tuple(asio::use_awaitable);

constexpr std::size_t kTransferBufferBytes = 16 * 1024;
constexpr std::size_t kEarlyBodyBytes = 16 * 1024;
constexpr int kClientClosedStatus = 499;  // nginx's convention for "the client left first"
// Lingering close: how much a client may still send after its answer, and for
// how long, before the connection is closed regardless (nginx: lingering_close).
constexpr std::size_t kLingerBytes = 64 * 1024;
constexpr std::chrono::seconds kLingerTime{1};

// Header bytes are read straight after the socket reports them readable, with
// no suspension in between, so one buffer per thread serves every exchange:
// an idle connection holds no buffer at all. Body bytes that are buffered and
// input discarded before a close go through it the same way.
thread_local std::array<char, 16 * 1024> t_header_buffer;

// One line per 10 s about connects that failed for want of local descriptors.
ReportThrottle g_connect_shortage_reports(std::chrono::seconds(10));
// The same for responses that could not be spilled to disk.
ReportThrottle g_spill_failure_reports(std::chrono::seconds(10));

// Up to four pieces in one write: a forwarded header (three) and the body that came with it.
using Gather = std::array<asio::const_buffer, 4>;

// Bytes written to `socket` that its peer has not taken yet (SIOCOUTQ); 0 when unknown.
std::uint64_t unacknowledged_bytes(Socket& socket) {
  int queued = 0;
  if (::ioctl(socket.native_handle(), SIOCOUTQ, &queued) != 0 || queued < 0) return 0;
  return static_cast<std::uint64_t>(queued);
}

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
  Exchange(Socket client, std::shared_ptr<Pool> pool, const AccessLog& access_log,
           SpillSpace& spill_space, LiveExchanges& live, std::unique_ptr<HeadSoFar> resumed)
      : client_(std::move(client)),
        pool_(std::move(pool)),
        settings_(pool_->settings()),
        access_log_(access_log),
        spill_space_(spill_space),
        parser_({.max_header_bytes = settings_->max_header_bytes,
                 .max_body_bytes = settings_->max_body_bytes}),
        client_watch_(client_.get_executor(), [this] { cancel_all(); }),
        backend_watch_(client_.get_executor(), [this] { cancel_backend(); }),
        budget_(settings_->client_timeout, settings_->client_min_rate),
        live_(live),
        registration_(live.add({.end = [this] { end_for_shutdown(); },
                                .park = [this](ParkedHeads& shelf) { ask_to_park(shelf); }})) {
    if (resumed) {
      started_ = resumed->accepted_at;
      head_deadline_ = resumed->deadline;
      resumed_bytes_ = std::move(resumed->received);
    } else {
      head_deadline_ = started_ + settings_->client_timeout;
    }
  }
  ~Exchange() { live_.remove(registration_); }
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  asio::awaitable<void> run() {
    // Reads right after a readiness report, and send_now(), must never block the thread.
    asio::error_code ignored;
    client_.non_blocking(true, ignored);
    co_await serve();
    if (parked_) co_return;  // the connection goes on elsewhere, and is counted there
    backend_watch_.stop();
    release_backend();
    // Counted before the client can see the end of its answer: a client that
    // has it (and then scrapes /metrics) finds its request counted.
    record(Clock::now());
    if (input_unread() && !reset_client_) co_await linger();
    client_watch_.stop();
    close_client();
  }

 private:
  asio::awaitable<void> serve();
  asio::awaitable<bool> read_header();
  // Header bytes from the client: parsed, and counted.
  void take_header_bytes(std::string_view piece);
  asio::awaitable<bool> buffer_body();
  asio::awaitable<bool> connect(Lease& lease);
  // Opens backend_ and connects it to `endpoint` (cut short by backend_watch_).
  asio::awaitable<asio::error_code> connect_to(const Endpoint& endpoint);
  asio::awaitable<bool> send_head();
  asio::awaitable<void> upload_body();
  asio::awaitable<void> relay();
  // Response bytes read from the backend: counted, and the status noted.
  void received(std::string_view bytes);
  // Spilling failed (disk full, spill_limit reached, an I/O error): from now on
  // the backend waits for the client, as without response_spill. Says so now and then.
  void log_spill_failure(const std::error_code& error);
  // The disk lost part of the response: the client's connection is reset, not
  // closed, so that it cannot take a cut response for a whole one.
  void cut_response(const std::error_code& error);
  // Sends `buffers` to the backend, waiting (under request_timeout) only for
  // what does not go out at once.
  asio::awaitable<asio::error_code> send_to_backend(Gather buffers);
  asio::awaitable<void> reply(int status, std::string_view detail, bool retry_after = false);
  asio::awaitable<void> linger();

  // Every wait on the client after the header goes through these: they keep
  // the budget's account and arm client_watch_ with what is left of it.
  void begin_client_wait() {
    const auto now = Clock::now();
    budget_.begin_wait(now);
    client_watch_.arm_until(budget_.deadline(now));
  }
  void end_client_wait() {
    budget_.end_wait(Clock::now());
    if (!budget_.waiting()) client_watch_.disarm();
  }
  // The client ran out of time after its header: says which limit, once.
  void log_client_too_slow(std::string_view waiting_for);

  // What went wrong: the first cause is the one that counts.
  void mark(Outcome outcome) {
    if (outcome_ == Outcome::served) outcome_ = outcome;
  }

  // The proxy stops and this exchange is still running: every wait ends now,
  // and the exchange finishes (and is counted) as `shutdown`.
  void end_for_shutdown() {
    mark(Outcome::shutdown);
    shutting_down_ = true;
    cancel_all();
  }

  // An upgrade pauses the proxy: if this exchange waits for the rest of its
  // head, the wait ends and read_header() parks the connection in `shelf`.
  // Only that wait is answered: the coroutine alone touches its socket.
  void ask_to_park(ParkedHeads& shelf) {
    if (!waiting_for_head_) return;
    park_to_ = &shelf;
    asio::error_code ignored;
    client_.cancel(ignored);
  }
  void park();

  void cancel_all() {
    asio::error_code ignored;
    client_.cancel(ignored);
    cancel_backend();
  }
  void cancel_backend() {
    asio::error_code ignored;
    if (backend_) backend_->cancel(ignored);
  }
  // The backend is done with: its socket closed and the slot given back at
  // once, so that a waiting request takes it even while this client still reads.
  void release_backend() {
    asio::error_code ignored;
    if (backend_) backend_->close(ignored);
    stop_slow_clock();
    lease_.reset();
  }
  // slow_request_threshold counts the backend's time only: from when it has
  // the whole request until it is done, less the waits for the client to
  // read (a client cannot make a request look slow). Past the threshold the
  // request is reported once; its end is reported by record().
  void start_slow_clock();
  void pause_slow_clock();
  void resume_slow_clock();
  void stop_slow_clock();
  std::chrono::nanoseconds backend_time(Clock::time_point now) const {
    return slow_spent_ + (slow_running_ ? now - slow_resumed_at_ : Clock::duration::zero());
  }
  void report_slow();
  // Input the client may still send that was never read: a close now would
  // make the kernel answer it with a reset, which can destroy our answer.
  bool input_unread() const {
    return !silent_ && bytes_out_ > 0 && !client_watch_.expired() &&
           (parser_.status() != RequestParser::Status::complete || body_remaining_ > 0);
  }
  void close_client();
  // Metrics and the access log line of this exchange.
  void record(Clock::time_point done);

  Socket client_;
  std::shared_ptr<Pool> pool_;
  std::shared_ptr<const PoolConfig> settings_;
  const AccessLog& access_log_;
  SpillSpace& spill_space_;
  RequestParser parser_;
  Watchdog client_watch_;   // the client: header deadline, then what budget_ allows
  Watchdog backend_watch_;  // backend silence: connect, taking the request, response
  ClientBudget budget_;
  LiveExchanges& live_;
  LiveExchanges::Entry registration_;
  bool shutting_down_ = false;      // no more waits: close as soon as possible
  bool waiting_for_head_ = false;   // suspended until more of the head arrives
  ParkedHeads* park_to_ = nullptr;  // an upgrade asked for the connection
  bool parked_ = false;             // the connection was handed on: nothing left to do
  std::string resumed_bytes_;       // a resumed head's bytes, until read_header() takes them
  std::optional<Socket> backend_;
  Lease lease_;
  std::shared_ptr<Backend> served_by_;  // for the access log, after the lease is given back

  // Body bytes read before the slot (up to body_buffer), with the header, or while queued.
  std::vector<char> early_body_;
  std::uint64_t body_remaining_ = 0;  // body bytes still to read from the client
  bool upload_done_ = false;
  bool relay_done_ = false;
  bool client_too_slow_logged_ = false;
  bool reset_client_ = false;  // close with a reset: what the client has is not whole
  ResponseHeadReader response_head_;

  // What happened, for metrics and the access log.
  Clock::time_point started_ = Clock::now();  // the accept (an earlier image's, if resumed)
  Clock::time_point head_deadline_;           // client_timeout from the accept
  bool silent_ = false;                       // a connection that sent nothing: not a request
  bool local_shortage_ = false;  // a connect failed for want of our own descriptors or memory
  int status_ = 0;
  Outcome outcome_ = Outcome::served;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::uint64_t sent_to_client_ = 0;
  std::uint64_t received_from_backend_ = 0;
  std::chrono::nanoseconds queue_wait_{0};
  ForwardedHead forwarded_head_;  // planned once the header is complete
  Clock::time_point header_at_;   // the whole header was in: the request's start
  // Only for pools with slow_request_threshold: no timer elsewhere.
  std::optional<Watchdog> slow_watch_;
  bool slow_running_ = false;               // the backend's time is counting
  Clock::time_point slow_resumed_at_;       // since when
  std::chrono::nanoseconds slow_spent_{0};  // counted before that
  std::uint64_t slow_id_ = 0;               // reported as slow (0: not)
  std::shared_ptr<Backend> slow_backend_;   // the backend it was reported on
};

asio::awaitable<void> Exchange::serve() {
  if (!co_await read_header()) co_return;
  header_at_ = Clock::now();
  forwarded_head_.plan(parser_, {.queue_time = settings_->queue_time,
                                 .keep_request_start = settings_->keep_request_start,
                                 .create_traceparent = settings_->create_traceparent});
  // A body that came whole with its header (the common case) skips this step.
  if (body_remaining_ > 0 && early_body_.size() < settings_->body_buffer_bytes &&
      !co_await buffer_body())
    co_return;

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
      if (local_shortage_) {
        lease_.reset();  // the backend is fine: another request may take its slot
        mark(Outcome::proxy_error);
        co_await reply(503, "the proxy is short of file descriptors", true);
        co_return;
      }
      tried.push_back(&lease_.backend());
      lease_.reset();
      pool_->stats().count_retry();
      continue;
    }
    switch (acquired.outcome) {
      case AcquireOutcome::queue_full:
        pool_->stats().count_rejected(RejectReason::queue_full);
        mark(Outcome::queue_full);
        co_await reply(503, "every backend is busy and the queue is full", true);
        break;
      case AcquireOutcome::queue_timeout:
        pool_->stats().count_rejected(RejectReason::queue_timeout);
        mark(Outcome::queue_timeout);
        co_await reply(503, "no backend became free within queue_timeout", true);
        break;
      case AcquireOutcome::client_closed:
        if (shutting_down_) {  // the wait was cut by the shutdown, not by the client
          co_await reply(503, "the proxy is shutting down", true);
          break;
        }
        pool_->stats().count_rejected(RejectReason::client_closed);
        mark(Outcome::client_closed);
        status_ = kClientClosedStatus;
        break;
      case AcquireOutcome::no_backend:
        if (tried.empty()) {
          mark(Outcome::no_backend);
          co_await reply(503, "no backend is up", true);
        } else {
          mark(Outcome::connect_failed);
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

void Exchange::start_slow_clock() {
  if (settings_->slow_request_threshold.count() <= 0 || !pool_->events().slow || !lease_) return;
  slow_watch_.emplace(client_.get_executor(), [this] { report_slow(); });
  resume_slow_clock();
}

void Exchange::pause_slow_clock() {
  if (!slow_watch_ || !slow_running_) return;
  slow_spent_ += Clock::now() - slow_resumed_at_;
  slow_running_ = false;
  slow_watch_->disarm();
}

void Exchange::resume_slow_clock() {
  if (!slow_watch_ || slow_running_ || !lease_) return;
  slow_running_ = true;
  slow_resumed_at_ = Clock::now();
  if (slow_id_ == 0) slow_watch_->arm(settings_->slow_request_threshold - slow_spent_);
}

void Exchange::stop_slow_clock() {
  if (!slow_watch_) return;
  pause_slow_clock();
  slow_watch_->stop();
}

void Exchange::report_slow() {
  if (slow_id_ != 0 || !lease_) return;
  slow_id_ = next_slow_request_id();
  slow_backend_ = lease_.backend_ptr();
  const auto now = Clock::now();
  const SlowRequest request{
      .id = slow_id_,
      .method = std::string(parser_.find("REQUEST_METHOD")),
      .uri = std::string(parser_.find("REQUEST_URI")),
      .trace_id = std::string(forwarded_head_.trace_id()),
      .accepted = std::chrono::time_point_cast<std::chrono::system_clock::duration>(
          std::chrono::system_clock::now() - (now - started_)),
      .queue_wait = queue_wait_,
      .running = backend_time(now)};
  pool_->events().slow(*pool_, slow_backend_, request);
}

void Exchange::received(std::string_view bytes) {
  received_from_backend_ += bytes.size();
  response_head_.feed(bytes);
}

void Exchange::cut_response(const std::error_code& error) {
  log_error(
      "pool {}: a response held in spill_dir {} for a slow client was lost: {}; the "
      "client's connection is reset",
      pool_->name(), spill_space_.directory(), error.message());
  reset_client_ = true;
  status_ = 502;
  mark(Outcome::proxy_error);
}

void Exchange::log_spill_failure(const std::error_code& error) {
  std::uint64_t held_back = 0;
  if (!g_spill_failure_reports.allow(held_back)) return;
  log_warn(
      "pool {}: cannot hold more of a response for a slow client in spill_dir {} ({} held by all "
      "responses): {}; its backend waits for the client ({} more since the last such line)",
      pool_->name(), spill_space_.directory(), format_size(spill_space_.in_use()), error.message(),
      held_back);
}

asio::awaitable<asio::error_code> Exchange::send_to_backend(Gather buffers) {
  asio::error_code ec = send_now(*backend_, buffers);
  if (ec != asio::error::would_block) co_return ec;
  backend_watch_.arm(settings_->request_timeout);
  std::tie(ec, std::ignore) = co_await asio::async_write(*backend_, buffers, use_tuple);
  backend_watch_.disarm();  // the backend owes nothing more until the body is in
  co_return ec;
}

void Exchange::log_client_too_slow(std::string_view waiting_for) {
  if (client_too_slow_logged_) return;
  client_too_slow_logged_ = true;
  const auto now = Clock::now();
  if (budget_.exhausted(now)) {
    log_warn(
        "pool {}: client too slow {}: {} bytes moved in {} of waiting, below client_min_rate "
        "({}/s); closed",
        pool_->name(), waiting_for, budget_.bytes_moved(),
        format_duration(std::chrono::duration_cast<Milliseconds>(budget_.waited(now))),
        format_size(settings_->client_min_rate));
  } else {
    log_warn("pool {}: client too slow {}: no progress for client_timeout ({}); closed",
             pool_->name(), waiting_for, format_duration(settings_->client_timeout));
  }
}

void Exchange::park() {
  client_watch_.disarm();
  parked_ = true;
  HeadSoFar head{
      .received = parser_.raw_header(), .accepted_at = started_, .deadline = head_deadline_};
  park_to_->put({.client = std::move(client_), .pool = pool_, .head = std::move(head)});
}

void Exchange::take_header_bytes(std::string_view piece) {
  bytes_in_ += piece.size();
  const auto fed = parser_.feed(piece);
  if (fed.status != RequestParser::Status::complete) return;
  // What came after the header is the start of the body (never past its end).
  const std::uint64_t body = parser_.content_length();
  const auto early = std::min<std::uint64_t>(piece.size() - fed.consumed, body);
  // Room for the part read before a slot is taken (or, without body_buffer,
  // while queued); the body is streamed past it.
  const std::uint64_t room = std::min<std::uint64_t>(
      body, std::max<std::uint64_t>(settings_->body_buffer_bytes, kEarlyBodyBytes));
  early_body_.reserve(std::max<std::uint64_t>(early, room));
  early_body_.assign(piece.begin() + fed.consumed, piece.begin() + fed.consumed + early);
  body_remaining_ = body - early;
  budget_.add_bytes(early);
}

asio::awaitable<bool> Exchange::read_header() {
  // The whole header must arrive within client_timeout of the accept: no
  // slowloris. A head resumed after an upgrade keeps its first deadline.
  std::size_t received = resumed_bytes_.size();
  if (!resumed_bytes_.empty()) {
    take_header_bytes(resumed_bytes_);
    std::string().swap(resumed_bytes_);
  }
  while (parser_.status() == RequestParser::Status::need_more) {
    // Read first: the header usually came with the connection. Wait only if not.
    asio::error_code ec;
    std::size_t n = client_.read_some(asio::buffer(t_header_buffer), ec);
    if (ec == asio::error::would_block && shutting_down_) ec = asio::error::operation_aborted;
    if (ec == asio::error::would_block) {
      client_watch_.arm_until(head_deadline_);
      waiting_for_head_ = true;
      std::tie(ec) = co_await client_.async_wait(Socket::wait_read, use_tuple);
      waiting_for_head_ = false;
      if (park_to_) {
        park();
        co_return false;
      }
      if (!ec) continue;
    }
    if (ec || n == 0) {
      if (received == 0 && !client_watch_.expired()) {
        silent_ = true;  // a health check or port scan: normal, not an error
      } else if (client_watch_.expired()) {
        log_warn("pool {}: client sent {} header bytes in client_timeout ({}); closed",
                 pool_->name(), received, format_duration(settings_->client_timeout));
        status_ = 408;
        mark(Outcome::client_timeout);
      } else {
        status_ = kClientClosedStatus;
        mark(Outcome::client_closed);
      }
      co_return false;
    }
    received += n;
    take_header_bytes(std::string_view(t_header_buffer.data(), n));
  }
  client_watch_.disarm();

  if (parser_.status() == RequestParser::Status::error) {
    const RequestError error = parser_.error();
    log_warn("pool {}: rejected a request ({}): {}", pool_->name(), http_status(error),
             describe(error));
    const bool too_large =
        error == RequestError::body_too_large || error == RequestError::header_too_large;
    pool_->stats().count_rejected(too_large ? RejectReason::too_large : RejectReason::bad_request);
    mark(too_large ? Outcome::too_large : Outcome::bad_request);
    co_await reply(http_status(error), describe(error));
    co_return false;
  }
  co_return true;
}

asio::awaitable<bool> Exchange::buffer_body() {
  // Read the body, up to body_buffer, before taking a slot: a client that sends
  // it slowly holds no worker while it arrives, only this buffer and its budget.
  const std::uint64_t target =
      std::min<std::uint64_t>(early_body_.size() + body_remaining_, settings_->body_buffer_bytes);
  while (early_body_.size() < target) {
    asio::error_code ec;
    const std::size_t want =
        std::min<std::uint64_t>(target - early_body_.size(), t_header_buffer.size());
    const std::size_t n = client_.read_some(asio::buffer(t_header_buffer.data(), want), ec);
    if (ec == asio::error::would_block && shutting_down_) ec = asio::error::operation_aborted;
    if (ec == asio::error::would_block) {
      begin_client_wait();
      std::tie(ec) = co_await client_.async_wait(Socket::wait_read, use_tuple);
      end_client_wait();
      if (!ec) continue;
    }
    if (ec || n == 0) {
      if (client_watch_.expired()) {
        log_client_too_slow("sending its body");
        status_ = 408;
        mark(Outcome::client_timeout);
      } else {
        status_ = kClientClosedStatus;
        mark(Outcome::client_closed);
      }
      co_return false;
    }
    early_body_.insert(early_body_.end(), t_header_buffer.data(), t_header_buffer.data() + n);
    body_remaining_ -= n;
    bytes_in_ += n;
    budget_.add_bytes(n);
  }
  co_return true;
}

asio::awaitable<asio::error_code> Exchange::connect_to(const Endpoint& endpoint) {
  backend_.emplace(client_.get_executor());
  asio::error_code ec;
  backend_->open(endpoint.protocol(), ec);
  if (ec) co_return ec;
  // Non-blocking before the connect, so that Asio's connect needs no mode
  // change of its own; and send_now() must never block the thread: a backend
  // that stops reading while it answers would otherwise stall every exchange.
  backend_->non_blocking(true, ec);
  if (ec) co_return ec;
  if (endpoint.protocol().family() == AF_UNIX) {
    std::tie(ec) = co_await backend_->async_connect(endpoint, use_tuple);
    co_return ec;
  }
  set_no_delay(*backend_);
  // TCP by hand: Asio's connect polls the socket once more after it became
  // writable, a system call per request that this spares.
  const int fd = backend_->native_handle();
  if (::connect(fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) == 0)
    co_return asio::error_code();
  if (errno != EINPROGRESS) co_return asio::error_code(errno, asio::system_category());
  std::tie(ec) = co_await backend_->async_wait(Socket::wait_write, use_tuple);
  if (ec) co_return ec;
  int error = 0;
  socklen_t size = sizeof error;
  if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0) error = errno;
  co_return asio::error_code(error, asio::system_category());
}

asio::awaitable<bool> Exchange::connect(Lease& lease) {
  Backend& backend = lease.backend();
  for (const Endpoint& endpoint : backend.endpoints()) {
    backend_watch_.arm(settings_->connect_timeout);
    const asio::error_code ec = co_await connect_to(endpoint);
    const bool timed_out = backend_watch_.expired();
    backend_watch_.disarm();
    if (is_local_shortage(ec)) {
      // Ours, not the backend's (no socket, or no memory for one): no retry,
      // no mark against it, and one log line now and then, not one per request.
      local_shortage_ = true;
      backend_.reset();
      std::uint64_t held_back = 0;
      if (g_connect_shortage_reports.allow(held_back))
        log_error(
            "pool {}: cannot open a connection to backend {}: {}: this process is short of "
            "descriptors or memory (not the backend's fault); answering 503 until some close "
            "({} more since the last such line). Raise LimitNOFILE / ulimit -n",
            pool_->name(), backend.name(), ec.message(), held_back);
      co_return false;
    }
    if (!ec) {
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
  // The header with the pool's variables, and whatever body came along or was buffered.
  const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(queue_wait_);
  const auto arrived = std::chrono::system_clock::now() - (Clock::now() - header_at_);
  const auto head = forwarded_head_.pieces(
      std::chrono::time_point_cast<std::chrono::system_clock::duration>(arrived), waited);
  const Gather pieces{asio::buffer(head[0]), asio::buffer(head[1]), asio::buffer(head[2]),
                      asio::buffer(early_body_)};
  const asio::error_code ec = co_await send_to_backend(pieces);
  if (ec) {
    upload_done_ = true;
    co_return false;
  }
  if (body_remaining_ == 0) {
    upload_done_ = true;
    start_slow_clock();
  }
  co_return true;
}

asio::awaitable<void> Exchange::upload_body() {
  // Uninitialised on purpose: zero-filling 16 KiB per request shows in profiles.
  const std::size_t buffer_size = std::min<std::uint64_t>(kTransferBufferBytes, body_remaining_);
  const auto buffer = std::make_unique_for_overwrite<char[]>(buffer_size);
  asio::error_code ec;
  while (!ec && body_remaining_ > 0) {
    if (shutting_down_) co_return;  // relay() ends the exchange
    const std::size_t want = std::min<std::uint64_t>(buffer_size, body_remaining_);
    begin_client_wait();
    auto [read_error, n] =
        co_await client_.async_read_some(asio::buffer(buffer.get(), want), use_tuple);
    end_client_wait();
    if (read_error || n == 0) {
      if (!relay_done_) {
        if (client_watch_.expired()) {
          log_client_too_slow("sending its body");
          if (sent_to_client_ == 0) status_ = 408;
          mark(Outcome::client_timeout);
        } else {
          if (sent_to_client_ == 0) status_ = kClientClosedStatus;
          mark(Outcome::client_closed);
        }
        cancel_all();
      }
      co_return;
    }
    bytes_in_ += n;
    body_remaining_ -= n;
    budget_.add_bytes(n);
    // Named, not a temporary in the co_await: g++ 12 rejects an array initialiser there.
    const Gather piece{asio::buffer(buffer.get(), n)};
    ec = co_await send_to_backend(piece);
  }
  upload_done_ = true;
  if (!ec) {
    backend_watch_.arm(settings_->request_timeout);  // from here the backend owes an answer
    start_slow_clock();
  }
}

asio::awaitable<void> Exchange::relay() {
  // Moves the response from the backend to the client through `pending`, never
  // blocking: what the client does not take at once waits there, and meanwhile
  // the backend is read ahead, up to response_buffer, then into `spill` on
  // disk, up to response_spill. Once the backend has closed and all it sent is
  // held here, its slot is given back and only this client is waited on,
  // within its budget. Bytes go in order: while `spill` holds some, newer
  // bytes go behind them, and `pending` is refilled from it.
  ByteRing pending(kTransferBufferBytes);
  SpillFile spill(spill_space_, settings_->response_spill_bytes);
  bool spill_usable = settings_->response_spill_bytes > 0;
  const std::size_t read_ahead_limit =
      std::max<std::uint64_t>(kTransferBufferBytes, settings_->response_buffer_bytes);
  bool backend_open = true;
  asio::error_code backend_error;  // why the backend ended: eof, or what failed
  int moves_without_wait = 0;
  for (;;) {
    bool progress = false;
    bool backend_would_block = false;
    bool client_would_block = false;

    if (backend_open && pending.room() == 0) pending.grow(read_ahead_limit);
    const bool to_memory = spill.empty() && pending.room() > 0;
    const bool to_disk = !to_memory && spill_usable && spill.room() > 0;
    if (backend_open && (to_memory || to_disk)) {
      asio::error_code ec;
      std::size_t n = 0;
      if (to_memory) {
        const auto space = pending.free_space();
        n = backend_->read_some(space, ec);
        pending.commit(n);
        for (std::size_t left = n; const auto& piece : space) {
          const std::size_t used = std::min(left, piece.size());
          received(std::string_view(static_cast<const char*>(piece.data()), used));
          left -= used;
        }
      } else {
        const std::size_t want = std::min<std::uint64_t>(spill.room(), t_header_buffer.size());
        if (const std::error_code spill_error = spill.prepare(want)) {
          log_spill_failure(spill_error);
          spill_usable = false;  // nothing was read: the backend waits for the client
          continue;
        }
        n = backend_->read_some(asio::buffer(t_header_buffer.data(), want), ec);
        if (n > 0) {
          received(std::string_view(t_header_buffer.data(), n));
          if (const std::error_code spill_error = spill.append({t_header_buffer.data(), n})) {
            cut_response(spill_error);  // the disk failed these bytes
            break;
          }
        }
      }
      if (n > 0) {
        progress = true;
      } else if (ec == asio::error::would_block) {
        backend_would_block = true;
      } else {
        backend_open = false;
        backend_error = ec ? ec : asio::error::eof;
      }
    }

    if (!spill.empty() && pending.room() > 0) {
      std::error_code take_error;
      const std::size_t n = spill.take(pending.free_space(), take_error);
      if (take_error) {
        cut_response(take_error);  // held bytes cannot be read back
        break;
      }
      pending.commit(n);
      progress = progress || n > 0;
    }

    if (!pending.empty()) {
      asio::error_code ec;
      const std::size_t n = client_.write_some(pending.contents(), ec);
      if (n > 0) {
        progress = true;
        pending.consume(n);
        sent_to_client_ += n;
        bytes_out_ += n;
        budget_.add_bytes(n);
      } else if (ec == asio::error::would_block) {
        client_would_block = true;
      } else {
        if (sent_to_client_ == 0) status_ = kClientClosedStatus;
        mark(Outcome::client_closed);
        break;
      }
    }

    if (!backend_open) {
      if (pending.empty() && spill.empty()) break;
      // All the backend sent is held: free it now rather than at the client's pace.
      if (upload_done_ && lease_ && backend_error == asio::error::eof) release_backend();
    }
    if (progress) {
      // Both sides fast: let the thread's other exchanges run now and then.
      if (++moves_without_wait % 16 == 0) co_await asio::post(client_.get_executor(), use_tuple);
      continue;
    }

    if (shutting_down_) break;
    // Nothing moved: wait for whichever side can move next.
    asio::error_code wait_error;
    if (backend_would_block && upload_done_) backend_watch_.arm(settings_->request_timeout);
    if (client_would_block) budget_.set_unacknowledged(unacknowledged_bytes(client_));
    if (backend_would_block && client_would_block) {
      begin_client_wait();
      auto first = co_await (backend_->async_wait(Socket::wait_read, use_tuple) ||
                             client_.async_wait(Socket::wait_write, use_tuple));
      end_client_wait();
      wait_error = std::visit([](const auto& result) { return std::get<0>(result); }, first);
    } else if (client_would_block) {
      if (upload_done_) backend_watch_.disarm();  // not the backend's time
      pause_slow_clock();
      begin_client_wait();
      std::tie(wait_error) = co_await client_.async_wait(Socket::wait_write, use_tuple);
      end_client_wait();
      resume_slow_clock();
    } else {
      std::tie(wait_error) = co_await backend_->async_wait(Socket::wait_read, use_tuple);
    }
    if (!wait_error) continue;
    if (client_watch_.expired()) {
      log_client_too_slow("reading its response");
      if (sent_to_client_ == 0) status_ = 408;
      mark(Outcome::client_timeout);
      break;
    }
    if (backend_open) {
      backend_open = false;
      backend_error = wait_error;
    }
    break;  // the backend timed out (handled below), or a failure cancelled the wait
  }

  if (!backend_open && lease_) {
    if (backend_error == asio::error::eof) {
      response_head_.finish();
    } else if (backend_watch_.expired()) {
      lease_.backend().count_error(BackendErrorKind::timeout);
      mark(Outcome::backend_timeout);
      log_warn("pool {}: backend {} sent nothing for request_timeout ({}) on {}", pool_->name(),
               lease_.backend().name(), format_duration(settings_->request_timeout),
               quote_for_log(parser_.find("REQUEST_URI")));
      if (received_from_backend_ == 0) co_await reply(504, "the backend did not answer in time");
      if (pool_->events().timed_out)
        pool_->events().timed_out(*pool_, lease_.backend_ptr(), parser_.find("REQUEST_URI"),
                                  Clock::now() - started_);
    } else if (backend_error != asio::error::operation_aborted) {
      lease_.backend().count_error(BackendErrorKind::reset);
      mark(Outcome::backend_reset);
    }
  } else if (backend_error == asio::error::eof) {
    response_head_.finish();
  }
  relay_done_ = true;
  if (shutting_down_ && status_ == 0 && sent_to_client_ == 0) {
    co_await reply(503, "the proxy is shutting down and the backend had not answered", true);
  } else if (status_ == 0) {
    if (received_from_backend_ > 0) {
      status_ = response_head_.status_code();
    } else {
      log_warn("pool {}: backend {} closed without answering {}", pool_->name(),
               lease_ ? lease_.backend().name() : "", quote_for_log(parser_.find("REQUEST_URI")));
      mark(Outcome::backend_closed_early);
      co_await reply(502, "the backend closed the connection without answering");
    }
  }
  // The client failed or was too slow, or answered early: the rest of the
  // body is not needed.
  if (!upload_done_) cancel_all();
}

asio::awaitable<void> Exchange::reply(int status, std::string_view detail, bool retry_after) {
  status_ = status;
  const std::string response =
      error_response(status, detail, retry_after ? std::optional<int>(1) : std::nullopt);
  Gather buffers{asio::buffer(response), asio::const_buffer()};
  asio::error_code ec = send_now(client_, buffers);
  if (ec == asio::error::would_block && !shutting_down_) {
    begin_client_wait();
    std::tie(ec, std::ignore) = co_await asio::async_write(client_, buffers, use_tuple);
    end_client_wait();
  }
  if (!ec) bytes_out_ += response.size();
}

asio::awaitable<void> Exchange::linger() {
  // Say we are done (FIN), then read and discard what the client still sends,
  // briefly, so that the answer reaches it before the close (nginx's lingering
  // close). Bounded in bytes and time: a client cannot keep us here.
  if (shutting_down_) co_return;
  asio::error_code ec;
  client_.shutdown(Socket::shutdown_send, ec);
  if (ec) co_return;
  client_watch_.arm(kLingerTime);
  std::size_t discarded = 0;
  while (discarded < kLingerBytes) {
    const std::size_t n = client_.read_some(asio::buffer(t_header_buffer), ec);
    if (ec == asio::error::would_block) {
      std::tie(ec) = co_await client_.async_wait(Socket::wait_read, use_tuple);
      if (!ec) continue;
    }
    if (ec || n == 0) break;
    discarded += n;
  }
  client_watch_.disarm();
}

void Exchange::close_client() {
  asio::error_code ignored;
  if (reset_client_) {
    client_.set_option(asio::socket_base::linger(true, 0), ignored);  // close sends RST
  } else {
    client_.shutdown(Socket::shutdown_send, ignored);
  }
  client_.close(ignored);
}

void Exchange::record(Clock::time_point done) {
  if (silent_) return;

  const auto total = done - started_;
  if (slow_id_ != 0 && pool_->events().slow_ended)
    pool_->events().slow_ended(*pool_, slow_backend_, slow_id_, status_, slow_spent_);
  PoolStats& stats = pool_->stats();
  stats.count_request(status_, total);
  stats.count_outcome(outcome_);
  stats.add_bytes(bytes_in_, bytes_out_);
  if (access_log_.enabled()) {
    access_log_.write({.pool = pool_->name(),
                       .backend = served_by_ ? std::string_view(served_by_->name()) : "",
                       .status = status_,
                       .outcome = kOutcomes[static_cast<std::size_t>(outcome_)],
                       .bytes_in = bytes_in_,
                       .bytes_out = bytes_out_,
                       .queue_ms = std::chrono::duration<double, std::milli>(queue_wait_).count(),
                       .total_ms = std::chrono::duration<double, std::milli>(total).count(),
                       .trace_id = forwarded_head_.trace_id(),
                       .method = parser_.find("REQUEST_METHOD"),
                       .uri = parser_.find("REQUEST_URI")});
  }
}

}  // namespace

void LiveExchanges::end_all() {
  // Each end only cancels and marks; the exchanges finish on their own
  // coroutines, removing themselves later, so the list is not changed here.
  for (const auto& entry : entries_)
    entry.end();
}

void LiveExchanges::park_heads(ParkedHeads& shelf) {
  // Likewise: each parks on its own coroutine, later.
  for (const auto& entry : entries_)
    entry.park(shelf);
}

asio::awaitable<void> run_exchange(Socket client, std::shared_ptr<Pool> pool,
                                   const AccessLog& access_log, SpillSpace& spill_space,
                                   LiveExchanges& live, std::unique_ptr<HeadSoFar> resumed) {
  Exchange exchange(std::move(client), std::move(pool), access_log, spill_space, live,
                    std::move(resumed));
  co_await exchange.run();
}

}  // namespace scgi::proxy
