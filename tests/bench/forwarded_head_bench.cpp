// What adding the pool's variables costs per request (docs/design.md,
// "Variables the proxy adds"): ForwardedHead::plan and pieces on the header
// Debian's nginx sends for a browser's GET, against parsing that header (what
// every request costs anyway). Median of --runs runs of --requests each, in ns
// per request, one line per case.
//   build/bin/forwarded-head-bench [--requests 1000000] [--runs 5]
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "forwarded_head.hpp"
#include "scgi/request_writer.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using scgi::proxy::ForwardedHead;
using scgi::proxy::HeadAdditions;

// nginx's scgi_params and a browser's headers: about 900 bytes, 24 pairs.
std::string nginx_request() {
  return scgi::make_request(
      {{"REQUEST_METHOD", "GET"},
       {"REQUEST_URI", "/articles/2026/12/queue-time?utm_source=newsletter&page=2"},
       {"QUERY_STRING", "utm_source=newsletter&page=2"},
       {"CONTENT_TYPE", ""},
       {"DOCUMENT_URI", "/articles/2026/12/queue-time"},
       {"DOCUMENT_ROOT", "/usr/share/nginx/html"},
       {"SERVER_PROTOCOL", "HTTP/1.1"},
       {"REQUEST_SCHEME", "https"},
       {"HTTPS", "on"},
       {"REMOTE_ADDR", "203.0.113.74"},
       {"REMOTE_PORT", "53144"},
       {"SERVER_PORT", "443"},
       {"SERVER_NAME", "www.example.org"},
       {"HTTP_HOST", "www.example.org"},
       {"HTTP_USER_AGENT",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
       {"HTTP_ACCEPT", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
       {"HTTP_ACCEPT_LANGUAGE", "en-GB,en;q=0.7,de;q=0.3"},
       {"HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"},
       {"HTTP_REFERER", "https://www.example.org/articles/2026/12/"},
       {"HTTP_COOKIE", "session=7f3c2a9e4b1d8f6a0c5e3b2d1a9f8e7c; theme=dark; consent=1"},
       {"HTTP_UPGRADE_INSECURE_REQUESTS", "1"},
       {"HTTP_SEC_FETCH_DEST", "document"}});
}

// Nanoseconds per request of `step` over `requests` requests.
template <class Step>
double per_request_ns(std::uint64_t requests, Step step) {
  const auto start = Clock::now();
  for (std::uint64_t i = 0; i < requests; ++i)
    step(i);
  return std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
         static_cast<double>(requests);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t requests = 1'000'000;
  int runs = 5;
  CLI::App app("Cost per request of the variables scgi-proxy adds to a request's header");
  app.add_option("--requests", requests, "Requests per run")->check(CLI::PositiveNumber);
  app.add_option("--runs", runs, "Runs; the median is reported")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  const std::string request = nginx_request();
  scgi::RequestParser parsed;
  parsed.feed(request);
  std::size_t sink = 0;  // so the compiler keeps every step

  const auto parse = [&](std::uint64_t) {
    scgi::RequestParser parser;
    sink += parser.feed(request).consumed;
  };
  const auto forward = [&](HeadAdditions additions) {
    return [&, additions](std::uint64_t i) {
      ForwardedHead head;
      head.plan(parsed, additions);
      const auto accepted = std::chrono::system_clock::time_point(std::chrono::microseconds(i));
      for (const auto piece : head.pieces(accepted, std::chrono::microseconds(i % 1000)))
        sink += piece.size();
    };
  };
  struct Case {
    const char* name;
    std::function<void(std::uint64_t)> step;
  };
  const std::vector<Case> cases{
      {"parse the header (for comparison)", parse},
      {"forward unchanged (queue_time = false)", forward({.queue_time = false})},
      {"queue_time (default)", forward({})},
      {"queue_time + create_traceparent", forward({.create_traceparent = true})},
  };
  fmt::print("header: {} bytes, {} pairs; {} requests x {} runs, median\n", request.size(),
             parsed.headers().size(), requests, runs);
  for (const Case& c : cases) {
    std::vector<double> results;
    for (int run = 0; run < runs; ++run)
      results.push_back(per_request_ns(requests, c.step));
    fmt::print("{:<42} {:8.1f} ns/request\n", c.name, median(results));
  }
  return sink == 0 ? 1 : 0;
}
