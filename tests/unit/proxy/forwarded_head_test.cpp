#include <catch2/catch.hpp>

#include <string>

#include "forwarded_head.hpp"
#include "scgi/request_writer.hpp"

using namespace scgi;
using namespace scgi::proxy;
using namespace std::chrono_literals;

namespace {

const std::string kTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
// 2026-12-04T12:00:00.123456Z
const auto kAccepted = std::chrono::system_clock::time_point(1'796'385'600'123'456us);

using Pairs = std::vector<OwnedHeader>;

// A client's request, parsed as the exchange parses it.
struct ClientRequest {
  explicit ClientRequest(const Pairs& headers, std::string_view body = "hi") {
    const std::string bytes = make_request(headers, body);
    const auto fed = parser.feed(bytes);
    REQUIRE(fed.status == RequestParser::Status::complete);
  }
  RequestParser parser;
};

// What the backend receives, parsed again: it must be a valid SCGI header.
struct Forwarded {
  Forwarded(ForwardedHead& head, std::chrono::microseconds queue_wait = 1500us) {
    for (const std::string_view piece : head.pieces(kAccepted, queue_wait))
      bytes.append(piece);
    const auto fed = parser.feed(bytes);
    REQUIRE(fed.status == RequestParser::Status::complete);
    REQUIRE(fed.consumed == bytes.size());
  }
  int count(std::string_view name) const {
    int n = 0;
    for (const auto& pair : parser.headers())
      n += pair.first == name;
    return n;
  }
  std::string bytes;
  RequestParser parser;
};

}  // namespace

TEST_CASE("with nothing to add the header goes on byte for byte", "[forwarded-head]") {
  ClientRequest request(Pairs{{"REQUEST_METHOD", "GET"}, {"HTTP_TRACEPARENT", "junk"}});
  ForwardedHead head;
  head.plan(request.parser, {.queue_time = false, .create_traceparent = false});
  const auto pieces = head.pieces(kAccepted, 0us);
  CHECK(pieces[0] == request.parser.raw_header());
  CHECK(pieces[1].empty());
  CHECK(pieces[2].empty());
  CHECK(head.trace_id().empty());  // an invalid traceparent names no trace
}

TEST_CASE("queue time adds the accept's time and the queue wait after the client's pairs",
          "[forwarded-head]") {
  ClientRequest request(Pairs{{"REQUEST_METHOD", "POST"}, {"REQUEST_URI", "/x"}});
  ForwardedHead head;
  head.plan(request.parser, {});
  Forwarded sent(head);
  const auto& pairs = sent.parser.headers();
  REQUIRE(pairs.size() == 6);
  CHECK(pairs[0] == HeaderPair{"CONTENT_LENGTH", "2"});
  CHECK(pairs[1] == HeaderPair{"SCGI", "1"});
  CHECK(pairs[2] == HeaderPair{"REQUEST_METHOD", "POST"});
  CHECK(pairs[3] == HeaderPair{"REQUEST_URI", "/x"});
  CHECK(pairs[4] == HeaderPair{"HTTP_X_REQUEST_START", "t=1796385600123456"});
  CHECK(pairs[5] == HeaderPair{"SCGI_QUEUE_WAIT_US", "1500"});
  // The client's pairs are sent from where the parser holds them: no copy.
  CHECK(head.pieces(kAccepted, 0us)[1].data() == request.parser.block().data());
}

TEST_CASE("a request's own X-Request-Start is replaced, unless keep_request_start trusts it",
          "[forwarded-head]") {
  // A client behind a front end that passes its headers could otherwise say it
  // waited for hours, and have an autoscaler act on it.
  ClientRequest request(Pairs{{"HTTP_X_REQUEST_START", "t=0"}, {"HTTP_X_REQUEST_START", "t=1"}});
  ForwardedHead head;
  head.plan(request.parser, {});
  Forwarded sent(head, 0us);
  CHECK(sent.count("HTTP_X_REQUEST_START") == 1);
  CHECK(sent.parser.find("HTTP_X_REQUEST_START") == "t=1796385600123456");

  ClientRequest stamped(Pairs{{"HTTP_X_REQUEST_START", "t=1700000000.123"}});
  ForwardedHead kept;
  kept.plan(stamped.parser, {.keep_request_start = true});
  Forwarded trusted(kept, 0us);
  CHECK(trusted.count("HTTP_X_REQUEST_START") == 1);
  CHECK(trusted.parser.find("HTTP_X_REQUEST_START") == "t=1700000000.123");
  CHECK(trusted.parser.find("SCGI_QUEUE_WAIT_US") == "0");
}

TEST_CASE("a queue wait the client wrote itself never reaches the application",
          "[forwarded-head]") {
  ClientRequest request(
      Pairs{{"SCGI_QUEUE_WAIT_US", "0"}, {"REQUEST_METHOD", "GET"}, {"SCGI_QUEUE_WAIT_US", "1"}});
  ForwardedHead head;
  head.plan(request.parser, {});
  Forwarded sent(head, 250'000us);
  CHECK(sent.count("SCGI_QUEUE_WAIT_US") == 1);
  CHECK(sent.parser.find("SCGI_QUEUE_WAIT_US") == "250000");
  CHECK(sent.parser.find("REQUEST_METHOD") == "GET");

  // With queue_time off the proxy says nothing of its own, so nothing is taken out.
  ForwardedHead off;
  off.plan(request.parser, {.queue_time = false});
  CHECK(off.pieces(kAccepted, 0us)[0] == request.parser.raw_header());
}

TEST_CASE("a valid traceparent is passed on and names the trace", "[forwarded-head]") {
  ClientRequest request(Pairs{{"HTTP_TRACEPARENT", kTraceparent}});
  for (const bool create : {false, true}) {
    ForwardedHead head;
    head.plan(request.parser, {.queue_time = false, .create_traceparent = create});
    CHECK(head.trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(head.pieces(kAccepted, 0us)[0] == request.parser.raw_header());
  }
}

TEST_CASE("create_traceparent starts a trace for a request without a valid one",
          "[forwarded-head]") {
  SECTION("none came") {
    ClientRequest request(Pairs{{"REQUEST_METHOD", "GET"}});
    ForwardedHead head;
    head.plan(request.parser, {.queue_time = false, .create_traceparent = true});
    Forwarded sent(head);
    const std::string_view created = sent.parser.find("HTTP_TRACEPARENT");
    CHECK(valid_traceparent(created));
    CHECK(head.trace_id() == trace_id_of(created));
    CHECK(sent.count("SCGI_QUEUE_WAIT_US") == 0);
  }
  SECTION("the tracestate of a trace that is not continued goes with it") {
    ClientRequest request(Pairs{{"HTTP_TRACEPARENT", "00-zz"}, {"HTTP_TRACESTATE", "vendor=1"}});
    ForwardedHead head;
    head.plan(request.parser, {.create_traceparent = true});
    Forwarded sent(head);
    CHECK(sent.count("HTTP_TRACESTATE") == 0);
    ClientRequest valid(Pairs{{"HTTP_TRACEPARENT", kTraceparent}, {"HTTP_TRACESTATE", "vendor=1"}});
    ForwardedHead continued;
    continued.plan(valid.parser, {.create_traceparent = true});
    Forwarded passed(continued);
    CHECK(passed.parser.find("HTTP_TRACESTATE") == "vendor=1");
  }
  SECTION("an invalid one, or two (which W3C counts as none), are replaced") {
    for (const auto& headers : std::vector<Pairs>{
             {{"HTTP_TRACEPARENT", "00-zz"}},
             {{"HTTP_TRACEPARENT", kTraceparent}, {"HTTP_TRACEPARENT", kTraceparent}}}) {
      ClientRequest request(headers);
      ForwardedHead head;
      head.plan(request.parser, {.create_traceparent = true});
      Forwarded sent(head);
      CHECK(sent.count("HTTP_TRACEPARENT") == 1);
      CHECK(valid_traceparent(sent.parser.find("HTTP_TRACEPARENT")));
      CHECK(sent.parser.find("HTTP_TRACEPARENT") != kTraceparent);
      CHECK(head.trace_id() == trace_id_of(sent.parser.find("HTTP_TRACEPARENT")));
    }
  }
  SECTION("without create_traceparent two are passed on as they came, naming no trace") {
    ClientRequest request(
        Pairs{{"HTTP_TRACEPARENT", kTraceparent}, {"HTTP_TRACEPARENT", kTraceparent}});
    ForwardedHead head;
    head.plan(request.parser, {.queue_time = false});
    CHECK(head.trace_id().empty());
    CHECK(head.pieces(kAccepted, 0us)[0] == request.parser.raw_header());
  }
}
