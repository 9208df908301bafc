#include "discovery/dns_resolver.hpp"

#include <ares.h>
#include <arpa/nameser.h>
#include <poll.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <stdexcept>

// How c-ares meets Asio here: c-ares owns its sockets and says which it wants
// to read or write (ares_getsock) and when its next retry is due
// (ares_timeout). Each wait borrows those sockets into stream_descriptors only
// to learn readiness, gives them back (release(), never close()), then has
// c-ares do the I/O (ares_process_fd). Everything runs on the one thread of
// the io_context the resolver was made with, so c-ares is never touched from
// two threads.

namespace scgi::proxy {
namespace {

using asio::experimental::as_tuple;

// One of the two queries of a resolution; lives in resolve()'s frame, which
// outlives it (resolve() returns only when both have called back).
struct Query {
  int type = ns_t_a;
  int* remaining = nullptr;
  int status = ARES_SUCCESS;
  std::vector<asio::ip::address> addresses;
};

// Enough for any answer a pool can use; more are ignored.
constexpr int kMaxAddressesPerFamily = 256;

void parse_reply(Query& query, unsigned char* answer, int length) {
  if (query.type == ns_t_a) {
    std::vector<ares_addrttl> records(kMaxAddressesPerFamily);
    int count = kMaxAddressesPerFamily;
    query.status = ares_parse_a_reply(answer, length, nullptr, records.data(), &count);
    if (query.status != ARES_SUCCESS) return;
    for (int i = 0; i < count; ++i) {
      asio::ip::address_v4::bytes_type bytes;
      std::memcpy(bytes.data(), &records[i].ipaddr, bytes.size());
      query.addresses.emplace_back(asio::ip::address_v4(bytes));
    }
  } else {
    std::vector<ares_addr6ttl> records(kMaxAddressesPerFamily);
    int count = kMaxAddressesPerFamily;
    query.status = ares_parse_aaaa_reply(answer, length, nullptr, records.data(), &count);
    if (query.status != ARES_SUCCESS) return;
    for (int i = 0; i < count; ++i) {
      asio::ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), &records[i].ip6addr, bytes.size());
      query.addresses.emplace_back(asio::ip::address_v6(bytes));
    }
  }
}

void on_reply(void* arg, int status, int /*timeouts*/, unsigned char* answer, int length) {
  auto& query = *static_cast<Query*>(arg);
  query.status = status;
  if (status == ARES_SUCCESS) parse_reply(query, answer, length);
  --*query.remaining;
}

// NXDOMAIN and NODATA (also an answer whose records are all of other types).
bool answered_empty(int status) {
  return status == ARES_ENOTFOUND || status == ARES_ENODATA;
}

// The server said it will not answer this type (c-ares 1.18 reports a
// REFUSED reply from the only server as ECONNREFUSED, after trying it).
bool refused(int status) {
  return status == ARES_EREFUSED || status == ARES_ECONNREFUSED || status == ARES_ENOTIMP;
}

std::string describe(const Query& query) {
  return std::string(query.type == ns_t_a ? "A" : "AAAA") + ": " + ares_strerror(query.status);
}

// A socket c-ares owns, watched by Asio for a while: given back, never closed,
// however the wait ends (even when a coroutine frame is destroyed mid-wait).
class BorrowedSocket {
 public:
  BorrowedSocket(asio::io_context& context, ares_socket_t fd) : descriptor_(context, fd) {}
  ~BorrowedSocket() { descriptor_.release(); }
  BorrowedSocket(const BorrowedSocket&) = delete;
  BorrowedSocket& operator=(const BorrowedSocket&) = delete;
  asio::posix::stream_descriptor& descriptor() { return descriptor_; }

 private:
  asio::posix::stream_descriptor descriptor_;
};

// Cancels the queries of a resolution left unfinished (its frame destroyed at
// shutdown), so that their callbacks run while the Query objects still exist.
struct CancelUnfinished {
  ares_channel channel;
  const int& remaining;
  ~CancelUnfinished() {
    if (remaining > 0) ares_cancel(channel);
  }
};

std::chrono::milliseconds until_next_timeout(ares_channel channel) {
  timeval storage{};
  const timeval* next = ares_timeout(channel, nullptr, &storage);
  if (next == nullptr) return std::chrono::milliseconds(1000);  // nothing pending: a backstop
  return std::chrono::seconds(next->tv_sec) + std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::microseconds(next->tv_usec));
}

}  // namespace

DnsResolver::DnsResolver(asio::io_context& context, const std::optional<Address>& server,
                         std::chrono::milliseconds try_timeout)
    : context_(context) {
  static std::once_flag library_ready;
  std::call_once(library_ready, [] { ares_library_init(ARES_LIB_INIT_ALL); });
  ares_options options{};
  options.timeout = static_cast<int>(try_timeout.count());
  options.tries = 2;
  int status = ares_init_options(&channel_, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
  if (status != ARES_SUCCESS)
    throw std::runtime_error(std::string("cannot set up the DNS resolver: ") +
                             ares_strerror(status));
  if (server) {
    status = ares_set_servers_ports_csv(channel_, server->to_string().c_str());
    if (status != ARES_SUCCESS) {
      ares_destroy(channel_);
      throw std::runtime_error("cannot use " + server->to_string() +
                               " as DNS server: " + ares_strerror(status));
    }
  }
}

DnsResolver::~DnsResolver() {
  // Ends any query left (its callback sees ARES_EDESTRUCTION) and closes c-ares' sockets.
  ares_destroy(channel_);
}

void DnsResolver::cancel() {
  ares_cancel(channel_);  // each pending query calls back now with ARES_ECANCELLED
  if (wake_) wake_->cancel();
}

asio::awaitable<DnsAnswer> DnsResolver::resolve(const std::string& name) {
  int remaining = 2;
  Query a{ns_t_a, &remaining, ARES_SUCCESS, {}};
  Query aaaa{ns_t_aaaa, &remaining, ARES_SUCCESS, {}};
  const CancelUnfinished cancel_unfinished{channel_, remaining};
  // ares_search applies the system's search domains and ndots, as the C library would.
  ares_search(channel_, name.c_str(), ns_c_in, ns_t_a, on_reply, &a);
  ares_search(channel_, name.c_str(), ns_c_in, ns_t_aaaa, on_reply, &aaaa);
  while (remaining > 0)
    co_await wait_and_process();

  // A server that answers one family with addresses and refuses the other
  // (dnsmasq without --local forwards AAAA for a name it only has A records
  // of, and with no upstream refuses it) is plainly reachable: that family
  // has nothing to offer, so the addresses it did give stand.
  for (auto [query, other] : {std::pair{&a, &aaaa}, std::pair{&aaaa, &a}})
    if (refused(query->status) && other->status == ARES_SUCCESS && !other->addresses.empty())
      query->status = ARES_ENODATA;

  DnsAnswer answer;
  for (const Query* query : {&a, &aaaa}) {
    if (query->status == ARES_SUCCESS || answered_empty(query->status)) continue;
    answer.result = ResolutionResult::error;
    answer.error = answer.error.empty() ? describe(*query) : answer.error + ", " + describe(*query);
  }
  if (!answer.error.empty()) co_return answer;
  answer.addresses = std::move(a.addresses);
  answer.addresses.insert(answer.addresses.end(), aaaa.addresses.begin(), aaaa.addresses.end());
  std::sort(answer.addresses.begin(), answer.addresses.end());
  answer.addresses.erase(std::unique(answer.addresses.begin(), answer.addresses.end()),
                         answer.addresses.end());
  answer.result = answer.addresses.empty() ? ResolutionResult::empty : ResolutionResult::ok;
  co_return answer;
}

asio::awaitable<void> DnsResolver::wait_and_process() {
  std::array<ares_socket_t, ARES_GETSOCK_MAXNUM> sockets{};
  const int wanted = ares_getsock(channel_, sockets.data(), ARES_GETSOCK_MAXNUM);

  auto wake = std::make_shared<asio::steady_timer>(context_, until_next_timeout(channel_));
  wake_ = wake;
  std::vector<std::unique_ptr<BorrowedSocket>> watches;
  std::vector<pollfd> polled;
  for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
    const bool readable = ARES_GETSOCK_READABLE(wanted, i);
    const bool writable = ARES_GETSOCK_WRITABLE(wanted, i);
    if (!readable && !writable) continue;
    auto& watch =
        watches.emplace_back(std::make_unique<BorrowedSocket>(context_, sockets[i]))->descriptor();
    const auto wake_up = [wake](asio::error_code ec) {
      if (!ec) wake->cancel();
    };
    if (readable) watch.async_wait(asio::posix::stream_descriptor::wait_read, wake_up);
    if (writable) watch.async_wait(asio::posix::stream_descriptor::wait_write, wake_up);
    polled.push_back(
        {sockets[i], static_cast<short>((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), 0});
  }
  co_await wake->async_wait(as_tuple(asio::use_awaitable));
  watches.clear();  // given back before c-ares may close them

  // Which sockets are ready now: a zero-timeout poll, as several may be.
  if (!polled.empty() && ::poll(polled.data(), polled.size(), 0) > 0) {
    for (const pollfd& entry : polled) {
      const bool read = entry.revents & (POLLIN | POLLERR | POLLHUP);
      const bool write = entry.revents & POLLOUT;
      if (read || write)
        ares_process_fd(channel_, read ? entry.fd : ARES_SOCKET_BAD,
                        write ? entry.fd : ARES_SOCKET_BAD);
    }
  }
  ares_process_fd(channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // retries and timeouts due
}

}  // namespace scgi::proxy
