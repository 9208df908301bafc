// The variables a pool adds to what the application sees (docs/design.md,
// "Variables the proxy adds"): when the request was accepted, how long it
// waited in the queue, and its W3C trace context; the trace id in the access log.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <string>

#include "../support/harness.hpp"
#include "scgi/request_parser.hpp"
#include "scgi/request_writer.hpp"

using namespace scgi;
using namespace scgi::test;
using namespace std::chrono_literals;

namespace {

const std::string kTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

std::int64_t wall_clock_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The header as the worker received it (echo=1 sends it back), parsed.
struct EchoedHead {
  explicit EchoedHead(const Response& response) {
    REQUIRE(response.status() == 200);
    const std::string body = response.body();
    REQUIRE(parser.feed(body).status == RequestParser::Status::complete);
  }
  std::vector<HeaderPair> named(std::string_view name) const {
    std::vector<HeaderPair> found;
    for (const HeaderPair& pair : parser.headers())
      if (pair.first == name) found.push_back(pair);
    return found;
  }
  RequestParser parser;
};

std::string echo_request(const std::vector<OwnedHeader>& more) {
  std::vector<OwnedHeader> pairs{
      {"REQUEST_METHOD", "GET"}, {"REQUEST_URI", "/vars?echo=1"}, {"QUERY_STRING", "echo=1"}};
  pairs.insert(pairs.end(), more.begin(), more.end());
  return make_request(pairs);
}

}  // namespace

TEST_CASE("the application sees when its request was accepted and how long it queued",
          "[proxy][variables]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "concurrency = 1"});
  const Address& listen = pool.listen();

  SECTION("a request that found its worker free") {
    const auto before = wall_clock_us();
    const EchoedHead head(send_request(listen, echo_request({{"HTTP_X_CUSTOM", "1"}})));
    const auto after = wall_clock_us();
    // The client's pairs first, as sent, then the two added ones.
    const auto& pairs = head.parser.headers();
    REQUIRE(pairs.size() == 8);
    CHECK(pairs[2] == HeaderPair{"REQUEST_METHOD", "GET"});
    CHECK(pairs[5] == HeaderPair{"HTTP_X_CUSTOM", "1"});
    CHECK(pairs[6].first == "HTTP_X_REQUEST_START");
    CHECK(pairs[7] == HeaderPair{"SCGI_QUEUE_WAIT_US", "0"});
    const std::string start(pairs[6].second);
    REQUIRE(start.starts_with("t="));
    const std::int64_t accepted = std::stoll(start.substr(2));
    CHECK(accepted >= before);
    CHECK(accepted <= after);
  }

  SECTION("a request that waited behind another: its wait, and only the proxy's") {
    auto busy = std::async(std::launch::async, [&] {
      return send_request(listen, get_request("/busy?sleep_ms=600"), 20s);
    });
    REQUIRE(eventually([&] { return metric_sum(pool.scrape(), "scgi_requests_in_flight") == 1; }));
    const auto sent = std::chrono::steady_clock::now();
    // A client that claims to have waited no time at all: only the proxy says that.
    const EchoedHead head(send_request(listen, echo_request({{"SCGI_QUEUE_WAIT_US", "0"}})));
    const auto elapsed_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - sent)
                                .count();
    CHECK(busy.get().status() == 200);
    const auto waits = head.named("SCGI_QUEUE_WAIT_US");
    REQUIRE(waits.size() == 1);
    const std::int64_t waited = std::stoll(std::string(waits[0].second));
    CHECK(waited >= 300'000);  // the busy request had most of its 600 ms to go
    CHECK(waited <= elapsed_us);
    // The access log says the same wait.
    REQUIRE(eventually([&] { return access_log_lines(pool.access_log()).size() == 2; }));
    const auto line = access_log_lines(pool.access_log()).back();
    CHECK(std::stod(line.at("queue_ms")) == Approx(waited / 1000.0).margin(0.002));
  }

  SECTION("an X-Request-Start the request came with is replaced: a client cannot choose it") {
    const EchoedHead head(send_request(listen, echo_request({{"HTTP_X_REQUEST_START", "t=0"}})));
    const auto starts = head.named("HTTP_X_REQUEST_START");
    REQUIRE(starts.size() == 1);
    CHECK(starts[0].second != "t=0");
  }
}

TEST_CASE("keep_request_start keeps the X-Request-Start a front end set", "[proxy][variables]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.pool_keys = "keep_request_start = true"});
  const EchoedHead head(
      send_request(pool.listen(), echo_request({{"HTTP_X_REQUEST_START", "t=1700000000.123"}})));
  const auto starts = head.named("HTTP_X_REQUEST_START");
  REQUIRE(starts.size() == 1);
  CHECK(starts[0].second == "t=1700000000.123");
}

TEST_CASE("a traceparent is passed on, or created with create_traceparent, and logged",
          "[proxy][variables]") {
  TempDir dir;
  const bool create = GENERATE(false, true);
  CAPTURE(create);
  ProxiedWorkers pool(
      dir, {.pool_keys = fmt::format("create_traceparent = {}", create ? "true" : "false")});
  const Address& listen = pool.listen();

  // One the client sent goes on unchanged, whichever the setting.
  const EchoedHead passed(send_request(listen, echo_request({{"HTTP_TRACEPARENT", kTraceparent}})));
  REQUIRE(passed.named("HTTP_TRACEPARENT").size() == 1);
  CHECK(passed.named("HTTP_TRACEPARENT")[0].second == kTraceparent);

  // Without one, a new trace only when the pool creates them.
  const EchoedHead plain(send_request(listen, echo_request({})));
  const auto created = plain.named("HTTP_TRACEPARENT");
  CHECK(created.size() == (create ? 1u : 0u));

  REQUIRE(eventually([&] { return access_log_lines(pool.access_log()).size() == 2; }));
  const auto lines = access_log_lines(pool.access_log());
  CHECK(lines[0].at("trace") == "4bf92f3577b34da6a3ce929d0e0e4736");
  if (create) {
    REQUIRE(created.size() == 1);
    const std::string traceparent(created[0].second);
    REQUIRE(traceparent.size() == 55);
    CHECK(traceparent.starts_with("00-"));
    CHECK(traceparent.ends_with("-01"));
    CHECK(lines[1].at("trace") == traceparent.substr(3, 32));
  } else {
    CHECK(lines[1].at("trace") == "-");
  }
}
