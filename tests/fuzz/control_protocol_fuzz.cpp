// Fuzz target for the control protocol's parsers (docs/control-protocol.md):
// parse_request, which turns a line from the control socket into a request,
// and parse_reply, scgictl's reading of the manager's lines. Neither may
// throw or crash on any input; a rejected request's error reply is one valid
// line that scgictl reads back as a failure with the same id; an accepted one
// written back with request_line parses to the same request.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "scgi/control_protocol.hpp"

namespace {

using namespace scgi::control;
using nlohmann::json;

// One line of JSON ending in its only newline, as every reply must be.
std::string_view one_line(const std::string& line) {
  FUZZ_CHECK(!line.empty() && line.back() == '\n');
  FUZZ_CHECK(line.find('\n') == line.size() - 1);
  return std::string_view(line).substr(0, line.size() - 1);
}

void check_error_reply(const json& id, const std::string& message) {
  FUZZ_CHECK(!message.empty());
  const auto reply = parse_reply(one_line(error_reply(id, message)));
  FUZZ_CHECK(reply);
  FUZZ_CHECK(!reply.value().ok && !reply.value().is_log);
  FUZZ_CHECK(!reply.value().error.empty());
  FUZZ_CHECK(reply.value().body.value("id", json()) == id);
}

void check_round_trip(const Request& request) {
  const std::string line = request_line(request);
  json id;
  const auto back = parse_request(one_line(line), id);
  FUZZ_CHECK(back);
  const Request& again = back.value();
  FUZZ_CHECK(id == request.id);
  FUZZ_CHECK(again.command == request.command);
  FUZZ_CHECK(again.id == request.id);
  FUZZ_CHECK(again.pool == request.pool);
  FUZZ_CHECK(again.worker == request.worker);
  FUZZ_CHECK(again.workers == request.workers);
  FUZZ_CHECK(again.wait == request.wait);
  FUZZ_CHECK(again.lines == request.lines);
  FUZZ_CHECK(again.follow == request.follow);
  FUZZ_CHECK(request_line(again) == line);

  const auto ok = parse_reply(one_line(ok_reply(request.id)));
  FUZZ_CHECK(ok && ok.value().ok);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  json id = "before";  // parse_request resets it
  const auto request = parse_request(input, id);
  FUZZ_CHECK(id.is_null() || id.is_string() || id.is_number());
  if (request) {
    FUZZ_CHECK(id == request.value().id);
    check_round_trip(request.value());
  } else {
    check_error_reply(id, request.error());
  }

  // scgictl's side: whatever arrives is a reply, a log line or an error, never a throw.
  const auto reply = parse_reply(input);
  if (reply) {
    FUZZ_CHECK(reply.value().body.is_object());
    if (!reply.value().ok && !reply.value().is_log) FUZZ_CHECK(!reply.value().error.empty());
  } else {
    FUZZ_CHECK(!reply.error().empty());
  }
  // A log line of any bytes (worker output) is a valid log reply.
  const auto log = parse_reply(one_line(log_line(input)));
  FUZZ_CHECK(log && log.value().is_log);
  return 0;
}
