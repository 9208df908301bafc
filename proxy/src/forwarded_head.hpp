// The SCGI header a pool sends to its backend: the client's, with the
// variables the pool adds (docs/design.md, "Variables the proxy adds"):
//   HTTP_X_REQUEST_START  "t=" and the time the header was in, µs since the
//                         epoch (queue_time); one the request came with is
//                         replaced, unless keep_request_start trusts it
//   SCGI_QUEUE_WAIT_US    µs the request waited in the pool's queue (queue_time)
//   HTTP_TRACEPARENT      a new trace, when none valid came (create_traceparent;
//                         the client's tracestate then goes too: W3C restarts)
// The client's pairs go on as they came and without a copy, unless one must
// go: what only the proxy may say, or a trace context that is replaced.
// Pairs are added at the end of the block, so CONTENT_LENGTH stays first.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "scgi/request_parser.hpp"
#include "trace_context.hpp"

namespace scgi::proxy {

inline constexpr std::string_view kRequestStartName = "HTTP_X_REQUEST_START";
inline constexpr std::string_view kQueueWaitName = "SCGI_QUEUE_WAIT_US";
inline constexpr std::string_view kTraceparentName = "HTTP_TRACEPARENT";
inline constexpr std::string_view kTracestateName = "HTTP_TRACESTATE";

struct HeadAdditions {
  bool queue_time = true;
  bool keep_request_start = false;  // a front end that sets it itself is trusted
  bool create_traceparent = false;
};

class ForwardedHead {
 public:
  // Decides what changes, once `parser` holds a complete header; the parser
  // outlives this object and is not fed again.
  void plan(const RequestParser& parser, HeadAdditions additions);

  // The request's trace id: its valid traceparent's, or the one created; "" when none.
  std::string_view trace_id() const {
    return has_trace_id_ ? std::string_view(trace_id_.data(), trace_id_.size()) : "";
  }

  // The header's bytes in order (their concatenation is the netstring), with
  // the accept's time and the queue wait known now; the views live until the
  // next call.
  std::array<std::string_view, 3> pieces(std::chrono::system_clock::time_point accepted,
                                         std::chrono::microseconds queue_wait);

 private:
  void keep_trace_id(std::string_view id);

  const RequestParser* parser_ = nullptr;
  bool unchanged_ = true;  // nothing added, nothing dropped: the raw header as it came
  bool add_request_start_ = false;
  bool add_queue_wait_ = false;
  std::array<char, kTraceparentSize> created_traceparent_{};  // when traceparent_created_
  bool traceparent_created_ = false;
  std::array<char, kTraceIdSize> trace_id_{};
  bool has_trace_id_ = false;
  std::string kept_pairs_;       // the client's pairs less those dropped; "" when none is
  std::array<char, 24> length_;  // "NNN:"
  std::string added_;            // the added pairs and the closing ','
};

}  // namespace scgi::proxy
