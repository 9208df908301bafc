#include "forwarded_head.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>

namespace scgi::proxy {
namespace {

// Room for every pair this adds: 45 + 40 + 73 bytes and the comma.
constexpr std::size_t kAddedBytes = 192;

// A pair's bytes in the block ("NAME\0value\0"), from the parser's views into it.
std::string_view pair_bytes(const HeaderPair& pair) {
  return {pair.first.data(), static_cast<std::size_t>(pair.second.data() + pair.second.size() + 1 -
                                                      pair.first.data())};
}

void append_pair(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.push_back('\0');
  out.append(value);
  out.push_back('\0');
}

// A number's decimal digits with std::to_chars: a tenth of what a format
// string costs, on every request.
std::string_view decimal(std::int64_t value, std::array<char, 24>& room) {
  const auto end = std::to_chars(room.data(), room.data() + room.size(), value).ptr;
  return {room.data(), static_cast<std::size_t>(end - room.data())};
}

}  // namespace

void ForwardedHead::plan(const RequestParser& parser, HeadAdditions additions) {
  parser_ = &parser;
  bool has_request_start = false;
  bool has_own_queue_wait = false;
  bool has_tracestate = false;
  int traceparents = 0;
  std::string_view traceparent;
  for (const auto& [name, value] : parser.headers()) {
    if (name == kRequestStartName) {
      has_request_start = true;
    } else if (name == kQueueWaitName) {
      has_own_queue_wait = true;
    } else if (name == kTraceparentName) {
      ++traceparents;
      traceparent = value;
    } else if (name == kTracestateName) {
      has_tracestate = true;
    }
  }
  // Two traceparents are no trace context at all (the W3C rules): neither is trusted.
  const bool trace_valid = traceparents == 1 && valid_traceparent(traceparent);
  has_trace_id_ = false;
  if (trace_valid) keep_trace_id(trace_id_of(traceparent));

  add_request_start_ = additions.queue_time && !(additions.keep_request_start && has_request_start);
  add_queue_wait_ = additions.queue_time;
  traceparent_created_ = additions.create_traceparent && !trace_valid;
  if (traceparent_created_) {
    created_traceparent_ = new_traceparent();
    keep_trace_id(trace_id_of({created_traceparent_.data(), created_traceparent_.size()}));
  }
  // A client may not say when it started (APM agents and autoscalers act on
  // it), nor how long it queued.
  const bool drop_request_start = add_request_start_ && has_request_start;
  const bool drop_queue_wait = add_queue_wait_ && has_own_queue_wait;
  const bool drop_trace_context = traceparent_created_ && (traceparents > 0 || has_tracestate);
  unchanged_ = !add_request_start_ && !add_queue_wait_ && !traceparent_created_;

  kept_pairs_.clear();
  if (!drop_request_start && !drop_queue_wait && !drop_trace_context) return;
  for (const HeaderPair& pair : parser.headers()) {
    if (drop_request_start && pair.first == kRequestStartName) continue;
    if (drop_queue_wait && pair.first == kQueueWaitName) continue;
    if (drop_trace_context && (pair.first == kTraceparentName || pair.first == kTracestateName))
      continue;
    kept_pairs_.append(pair_bytes(pair));
  }
}

void ForwardedHead::keep_trace_id(std::string_view id) {
  std::copy(id.begin(), id.end(), trace_id_.begin());
  has_trace_id_ = true;
}

std::array<std::string_view, 3> ForwardedHead::pieces(
    std::chrono::system_clock::time_point accepted, std::chrono::microseconds queue_wait) {
  if (unchanged_) return {parser_->raw_header(), {}, {}};
  const std::string_view pairs = kept_pairs_.empty() ? parser_->block() : kept_pairs_;
  added_.clear();
  added_.reserve(kAddedBytes);
  std::array<char, 24> digits;
  if (add_request_start_) {
    const auto since_epoch =
        std::chrono::duration_cast<std::chrono::microseconds>(accepted.time_since_epoch());
    added_.append(kRequestStartName);
    added_.append(std::string_view("\0t=", 3));
    added_.append(decimal(since_epoch.count(), digits));
    added_.push_back('\0');
  }
  if (add_queue_wait_) append_pair(added_, kQueueWaitName, decimal(queue_wait.count(), digits));
  if (traceparent_created_)
    append_pair(added_, kTraceparentName,
                {created_traceparent_.data(), created_traceparent_.size()});
  const std::size_t block_size = pairs.size() + added_.size();
  added_.push_back(',');
  auto end = std::to_chars(length_.data(), length_.data() + length_.size() - 1, block_size).ptr;
  *end++ = ':';
  return {std::string_view(length_.data(), static_cast<std::size_t>(end - length_.data())), pairs,
          added_};
}

}  // namespace scgi::proxy
