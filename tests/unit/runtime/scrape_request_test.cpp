#include "scgi/runtime/scrape_request.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace scgi;

TEST_CASE("a request head ends at its empty line, with or without carriage returns", "[scrape]") {
  CHECK(end_of_request_head("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n") == 34);
  CHECK(end_of_request_head("GET /metrics HTTP/1.0\n\n") == 23);
  CHECK(end_of_request_head("GET /metrics HTTP/1.1\r\nHost: a\r\n") == std::string::npos);
  CHECK(end_of_request_head("GET /metr") == std::string::npos);
  CHECK(end_of_request_head("") == std::string::npos);
}

TEST_CASE("GET and HEAD of /metrics are answered, everything else refused by name", "[scrape]") {
  CHECK(answer_scrape("GET /metrics HTTP/1.1\r\n\r\n").status == 200);
  CHECK(answer_scrape("GET /metrics?name[]=up HTTP/1.0\r\n\r\n").status == 200);
  const ScrapeAnswer head = answer_scrape("HEAD /metrics HTTP/1.1\r\n\r\n");
  CHECK(head.status == 200);
  CHECK(head.head_only);
  CHECK(answer_scrape("GET / HTTP/1.1\r\n\r\n").status == 404);
  CHECK(answer_scrape("GET /metrics/x HTTP/1.1\r\n\r\n").status == 404);
  CHECK(answer_scrape("POST /metrics HTTP/1.1\r\n\r\n").status == 405);
  CHECK(answer_scrape("GET /metrics HTTP/2.0\r\n\r\n").status == 400);
  CHECK(answer_scrape("GET /metrics\r\n\r\n").status == 400);
  CHECK(answer_scrape("GET  HTTP/1.1\r\n\r\n").status == 400);
  CHECK(answer_scrape("\r\n\r\n").status == 400);
  CHECK(answer_scrape(std::string(kMaxScrapeHeadBytes + 1, 'a')).status == 431);
}

TEST_CASE("a response says its length, closes the connection and leaves HEAD bodiless",
          "[scrape]") {
  const std::string ok = scrape_response({.status = 200}, "up 1\n");
  CHECK(ok.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
  CHECK(ok.find("Content-Length: 5\r\n") != std::string::npos);
  CHECK(ok.find("Connection: close\r\n\r\n") != std::string::npos);
  CHECK(ok.ends_with("\r\n\r\nup 1\n"));

  const std::string head = scrape_response({.status = 200, .head_only = true}, "up 1\n");
  CHECK(head.find("Content-Length: 5\r\n") != std::string::npos);
  CHECK(head.ends_with("\r\n\r\n"));

  const std::string refused = scrape_response({.status = 405}, "unused");
  CHECK(refused.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
  CHECK(refused.find("Allow: GET, HEAD\r\n") != std::string::npos);
  CHECK(refused.ends_with("Method Not Allowed\n"));
}
