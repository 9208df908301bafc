#include <catch2/catch.hpp>

#include <string>

#include "scgi/response_head.hpp"

using scgi::ResponseHeadReader;
using Status = ResponseHeadReader::Status;

namespace {

// Reads a whole response as if the backend then closed; returns the status code
// (502 when the head could not be read).
int status_of(const std::string& response) {
  ResponseHeadReader reader;
  reader.feed(response);
  reader.finish();
  return reader.status_code();
}

}  // namespace

TEST_CASE("the status of each response shape is found as a front end would", "[response]") {
  struct Case {
    const char* what;
    std::string response;
    int status;
  };
  const std::vector<Case> cases = {
      {"Status header", "Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope", 404},
      {"no Status, has body", "Content-Type: text/html\r\n\r\n<p>hi</p>", 200},
      {"Location alone", "Location: http://example.test/\r\n\r\n", 302},
      {"Location with Status", "Status: 301 Moved\r\nLocation: /x\r\n\r\n", 301},
      {"Status after Location", "Location: /x\r\nStatus: 303 See Other\r\n\r\n", 303},
      {"NPH first line", "HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\n\r\n", 201},
      {"NPH HTTP/1.0", "HTTP/1.0 404 Not Found\r\n\r\n", 404},
      {"LF-only line endings", "Status: 202 Accepted\nContent-Type: text/plain\n\nok", 202},
      {"mixed line endings", "Content-Type: text/plain\r\nStatus: 418 Teapot\n\r\n", 418},
      {"Status without reason", "Status: 299\r\n\r\n", 299},
      {"lower-case status header", "status: 500 Oops\r\n\r\n", 500},
      {"Status with tab", "Status:\t204 No Content\r\n\r\n", 204},
      {"Status without space", "Status:410 Gone\r\n\r\n", 410},
      {"Status 204 without body", "Status: 204 No Content\r\n\r\n", 204},
      {"empty head", "\r\n", 200},
      {"empty head LF", "\nbody", 200},
      {"Status: abc", "Status: abc\r\n\r\n", 502},
      {"Status: 20", "Status: 20\r\n\r\n", 502},
      {"Status: 2000", "Status: 2000\r\n\r\n", 502},
      {"Status: 099", "Status: 099\r\n\r\n", 502},
      {"NPH without code", "HTTP/1.1\r\n\r\n", 502},
      {"NPH with bad code", "HTTP/1.1 OK\r\n\r\n", 502},
      {"empty response", "", 502},
      {"headers but no blank line", "Content-Type: text/plain\r\n", 502},
      {"HTTP/ on a later line is a header, not NPH", "X: y\r\nHTTP/1.1 500 x\r\n\r\n", 200},
      {"Status-Code is not Status", "Status-Code: 500\r\n\r\n", 200},
      {"X-Location is not Location", "X-Location: /x\r\n\r\n", 200},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    CHECK(status_of(c.response) == c.status);
  }
}

TEST_CASE("a response split at every byte gives the same status", "[response]") {
  const std::string response =
      "Content-Type: text/plain\r\nLocation: /next\r\nStatus: 307 Temporary\r\n\r\nbody bytes";
  const std::size_t head_size = response.find("\r\n\r\n") + 4;
  for (std::size_t cut = 0; cut <= response.size(); ++cut) {
    CAPTURE(cut);
    ResponseHeadReader reader;
    reader.feed(std::string_view(response).substr(0, cut));
    reader.feed(std::string_view(response).substr(cut));
    REQUIRE(reader.status() == Status::complete);
    CHECK(reader.status_code() == 307);
    CHECK(reader.head_bytes() == head_size);
  }
}

TEST_CASE("a response fed one byte at a time gives the same status", "[response]") {
  const std::string response = "HTTP/1.1 201 Created\nX: y\n\n";
  ResponseHeadReader reader;
  for (char c : response)
    reader.feed(std::string_view(&c, 1));
  CHECK(reader.status() == Status::complete);
  CHECK(reader.status_code() == 201);
}

TEST_CASE("bytes after the head are never read", "[response]") {
  ResponseHeadReader reader;
  REQUIRE(reader.feed("Status: 200 OK\r\n\r\n") == Status::complete);
  // A body that looks like a head changes nothing.
  CHECK(reader.feed("Status: 500 Oops\r\n\r\n") == Status::complete);
  CHECK(reader.status_code() == 200);
  CHECK(reader.finish() == Status::complete);
}

TEST_CASE("a head that never ends is bounded", "[response]") {
  ResponseHeadReader reader(1024);
  const std::string line = "X-Filler: " + std::string(100, 'a') + "\r\n";
  Status status = Status::need_more;
  for (int i = 0; i < 20 && status == Status::need_more; ++i)
    status = reader.feed(line);
  CHECK(status == Status::too_long);
  CHECK(reader.status_code() == 502);
}

TEST_CASE("one very long header line does not hide the status", "[response]") {
  const std::string response =
      "X-Long: " + std::string(9000, 'x') + "\r\nStatus: 404 Not Found\r\n\r\n";
  CHECK(status_of(response) == 404);
}

TEST_CASE("binary junk in the head does not break the reader", "[response]") {
  std::string junk;
  for (int i = 0; i < 256; ++i)
    if (i != '\n') junk.push_back(static_cast<char>(i));
  CHECK(status_of(junk + "\nStatus: 403 Forbidden\n\n") == 403);
}
