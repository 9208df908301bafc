// Debian's nginx, Apache 2.4 and lighttpd in front of scgi-manager, each
// running the configuration users copy from deploy/examples/, with real HTTP
// from curl: what each front end makes of the pool's answers, and what of the
// HTTP request reaches the worker (the sample worker's echo=1 sends back the
// raw SCGI header it received).
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "../support/harness.hpp"
#include "front_end_servers.hpp"

using namespace scgi;
using namespace scgi::test;

namespace {

// One SCGI header pair as it appears in the raw netstring.
std::string pair(const std::string& name, const std::string& value) {
  return name + '\0' + value + '\0';
}

// `name` where it stands as a pair's name (every pair but the first follows
// a NUL), to tell that no pair has that name.
std::string any_pair_named(const std::string& name) {
  return '\0' + name + '\0';
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The raw header with NULs shown as '|', for assertion messages.
std::string printable(std::string text) {
  std::replace(text.begin(), text.end(), '\0', '|');
  return text.substr(0, 2000);
}

// What differs between the front ends, each checked on Debian 12 and
// recorded in docs/frontends.md and ../shared/SCGI-PEERS.md.
struct FrontEndTraits {
  FrontEndKind kind;
  // `Cookie: a=1` + `Cookie: b=2` and `X-Dup: one` + `X-Dup: two`, as the worker sees them.
  std::vector<std::string> repeated_headers;
  // For GET /app/page?...: how the path is split into SCRIPT_NAME/PATH_INFO.
  std::vector<std::string> path_pairs;
  std::vector<std::string> absent_names;
};

FrontEndTraits traits(FrontEndKind kind) {
  switch (kind) {
    case FrontEndKind::nginx:
      // nginx 1.22 sends one pair per header line (merging came in 1.23).
      return {kind,
              {pair("HTTP_COOKIE", "a=1") + pair("HTTP_COOKIE", "b=2"),
               pair("HTTP_X_DUP", "one") + pair("HTTP_X_DUP", "two")},
              {pair("DOCUMENT_URI", "/app/page")},
              {"SCRIPT_NAME", "PATH_INFO"}};
    case FrontEndKind::apache:
      // Apache joins repeated headers with ", ", Cookie too.
      return {kind,
              {pair("HTTP_COOKIE", "a=1, b=2"), pair("HTTP_X_DUP", "one, two")},
              {pair("SCRIPT_NAME", "/app/page")},
              {"PATH_INFO"}};
    case FrontEndKind::lighttpd:
      // lighttpd joins Cookie with "; " (RFC 6265) and the others with ", ";
      // fix-root-scriptname makes the whole path PATH_INFO.
      return {kind,
              {pair("HTTP_COOKIE", "a=1; b=2"), pair("HTTP_X_DUP", "one, two")},
              {pair("SCRIPT_NAME", "") + pair("PATH_INFO", "/app/page")},
              {}};
  }
  return {kind, {}, {}, {}};
}

// 8 MiB that no front end could mistake for text, and its FNV-1a as the
// sample worker's digest=1 reports it.
std::string write_upload(const TempDir& dir, std::size_t size) {
  std::string bytes(size, '\0');
  std::uint64_t fnv = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<char>((i * 7 + i / 4096) % 256);
    fnv = (fnv ^ static_cast<unsigned char>(bytes[i])) * 0x100000001b3ull;
  }
  dir.write("upload.bin", bytes);
  return fmt::format("length={} fnv1a={:016x}\n", size, fnv);
}

// The cases every front end must pass, one after another on one manager and
// one front end (starting and stopping them costs more than all the cases).
// One worker, no queue, and a short request_timeout, so that 503 and 504 are
// quick to provoke; the 504 comes last, as its worker is recycled after it.
void serves_through_front_end(FrontEndKind kind) {
  const FrontEndTraits expected = traits(kind);
  TempDir dir;
  const Address pool = loopback(free_port());
  ManagerProcess manager(dir,
                         {.listen = pool,
                          .command = sample_worker_command(),
                          .pool_keys = "workers = 1\nconcurrency = 1\nqueue_size = 0\n"
                                       "request_timeout = \"1500ms\"\nstop_timeout = \"500ms\"\n"},
                         1);
  FrontEnd front(dir, kind, {.http_port = free_port(), .pool = pool});
  // For assertion messages: what the front end and the manager logged by then.
  const auto logs = [&] {
    return to_string(kind) + " error log:\n" + front.error_log() + "\nmanager log:\n" +
           manager.process().log();
  };

  {
    INFO("GET with a query string: the worker sees method, URI, query and path");
    const HttpReply reply = curl(dir, {}, front.url("/app/page?a=1&b=two&echo=1"));
    INFO(logs() << "\nworker received: " << printable(reply.body));
    CHECK(reply.status == 200);
    CHECK(contains(reply.body, pair("REQUEST_METHOD", "GET")));
    CHECK(contains(reply.body, pair("REQUEST_URI", "/app/page?a=1&b=two&echo=1")));
    CHECK(contains(reply.body, pair("QUERY_STRING", "a=1&b=two&echo=1")));
    CHECK(contains(reply.body, pair("SCGI", "1")));
    for (const std::string& part : expected.path_pairs)
      CHECK(contains(reply.body, part));
    for (const std::string& name : expected.absent_names)
      CHECK_FALSE(contains(reply.body, any_pair_named(name)));
  }
  {
    INFO("POST: the body reaches the worker whole, with its CONTENT_LENGTH");
    const std::string body = "name=value&other=" + std::string(1000, 'x');
    const HttpReply reply = curl(dir, {"--data-binary", body}, front.url("/form?echo=1"));
    INFO(logs() << "\nworker received: " << printable(reply.body));
    CHECK(reply.status == 200);
    // CONTENT_LENGTH comes first, right after the netstring's length, as SCGI requires.
    CHECK(reply.body.find(pair("CONTENT_LENGTH", std::to_string(body.size()))) ==
          reply.body.find(':') + 1);
    CHECK(contains(reply.body, pair("REQUEST_METHOD", "POST")));
    CHECK(reply.body.ends_with("," + body));  // echo: the header netstring, then the body
  }
  {
    INFO("an 8 MiB upload arrives intact");
    // digest=1: the worker reads the whole body before it answers, which
    // every front end can carry whether it buffers the body or streams it.
    const std::string digest = write_upload(dir, 8u << 20);
    const HttpReply reply = curl(dir,
                                 {"--data-binary", "@" + dir.file("upload.bin"), "-H",
                                  "Content-Type: application/octet-stream"},
                                 front.url("/upload?digest=1"));
    INFO(logs());
    CHECK(reply.status == 200);
    CHECK(reply.body == digest);
  }
  {
    INFO("repeated request headers reach the worker as the front end sends them");
    const HttpReply reply = curl(
        dir, {"-H", "Cookie: a=1", "-H", "Cookie: b=2", "-H", "X-Dup: one", "-H", "X-Dup: two"},
        front.url("/cookies?echo=1"));
    INFO(logs() << "\nworker received: " << printable(reply.body));
    CHECK(reply.status == 200);
    for (const std::string& part : expected.repeated_headers)
      CHECK(contains(reply.body, part));
  }
  {
    INFO("a worker's 404 and its redirect reach the client");
    const HttpReply missing = curl(dir, {}, front.url("/missing?status=404"));
    const HttpReply moved = curl(dir, {}, front.url("/moved?status=302&location=1"));
    INFO(logs());
    CHECK(missing.status == 404);
    CHECK(moved.status == 302);
    CHECK(moved.header("location").ends_with("/elsewhere"));
  }
  {
    INFO("a 200 with a Location reaches the client as the worker wrote it");
    // Apache follows such an answer internally unless ProxySCGIInternalRedirect
    // is Off, as the example sets it.
    const HttpReply reply = curl(dir, {}, front.url("/here?location=1"));
    INFO(logs());
    CHECK(reply.status == 200);
    CHECK(reply.header("location") == "/elsewhere");
    CHECK(reply.body.starts_with("hello from "));
  }
  {
    INFO("the pool's 503 (every worker busy, no queue) reaches the client with Retry-After");
    CurlRequest busy(dir, {}, front.url("/busy?sleep_ms=1000"));
    REQUIRE(eventually([&] { return metric_sum(manager.scrape(), "scgi_requests_in_flight") >= 1; },
                       5s));
    const HttpReply rejected = curl(dir, {}, front.url("/rejected"));
    INFO(logs());
    CHECK(rejected.status == 503);
    CHECK(rejected.body.starts_with("503 Service Unavailable\n"));  // the pool's page
    CHECK(!rejected.header("retry-after").empty());
    CHECK(busy.finish().status == 200);
  }
  {
    INFO("the pool's 504 (a worker silent past request_timeout) reaches the client");
    // The worker would answer 200 after 4 s: the pool gave up first.
    const HttpReply reply = curl(dir, {}, front.url("/stuck?sleep_ms=4000"));
    INFO(logs());
    CHECK(reply.status == 504);
    CHECK(reply.body.starts_with("504 Gateway Timeout\n"));  // the pool's page, not the front end's
    CHECK(outcomes(manager.scrape(), "backend_timeout") == 1);
  }
}

}  // namespace

TEST_CASE("nginx with deploy/examples/nginx-scgi.conf in front of scgi-manager",
          "[frontend][nginx]") {
  serves_through_front_end(FrontEndKind::nginx);
}

TEST_CASE("Apache 2.4 with deploy/examples/apache-scgi.conf in front of scgi-manager",
          "[frontend][apache]") {
  serves_through_front_end(FrontEndKind::apache);
}

TEST_CASE("lighttpd with deploy/examples/lighttpd-scgi.conf in front of scgi-manager",
          "[frontend][lighttpd]") {
  serves_through_front_end(FrontEndKind::lighttpd);
}

// Split mode: the same nginx site in front of scgi-proxy balancing workers
// that run elsewhere; and what an admin sees who forgot `include scgi_params`.
TEST_CASE("nginx -> scgi-proxy (split mode), and the 400 without include scgi_params",
          "[frontend][nginx][proxy]") {
  TempDir dir;
  ProxiedWorkers pool(dir, {.workers = {"a", "b"}});
  FrontEndSetup setup{.http_port = free_port(), .pool = pool.listen()};

  SECTION("with the example as it is, requests are balanced over both workers") {
    FrontEnd front(dir, FrontEndKind::nginx, setup);
    std::set<std::string> names;
    for (int i = 0; i < 6; ++i) {
      const HttpReply reply = curl(dir, {}, front.url("/hello"));
      CHECK(reply.status == 200);
      names.insert(reply.header("x-worker-name"));
    }
    CHECK(names == std::set<std::string>{"a", "b"});
  }
  SECTION("without include scgi_params the proxy answers 400 and its log says why") {
    setup.edits = {{"include scgi_params;", "# include scgi_params;"}};
    FrontEnd front(dir, FrontEndKind::nginx, setup);
    CHECK(curl(dir, {}, front.url("/bare")).status == 400);
    CHECK(eventually([&] { return contains(pool.proxy().log(), "include scgi_params"); }, 5s));
  }
}
