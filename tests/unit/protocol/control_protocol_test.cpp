// The control protocol's messages: status JSON both ways, request parsing with
// an error that names each problem, and replies.
#include <catch2/catch.hpp>

#include <string>

#include "sample_status.hpp"
#include "scgi/control_protocol.hpp"

using namespace scgi::control;
using nlohmann::json;

namespace {

// The error for a request line, or "" when it parses.
std::string error_for(const std::string& line) {
  json id;
  auto request = parse_request(line, id);
  return request ? std::string() : request.error();
}

Request parsed(const std::string& line) {
  json id;
  auto request = parse_request(line, id);
  INFO(line);
  REQUIRE(request);
  return request.value();
}

}  // namespace

TEST_CASE("pool and worker status survive a JSON round trip", "[control][protocol]") {
  const auto pools = scgi::test::two_worker_pool();
  const json written = pools;
  CHECK(written[0]["name"] == "app");
  CHECK(written[0]["workers"][0]["pid"] == 4242);
  CHECK(written[0]["workers"][1]["last_exit"] == "exit status 1");
  CHECK(written[0]["restarts"]["exit"] == 1);
  const auto read = json::parse(written.dump()).get<std::vector<PoolStatus>>();
  CHECK(read == pools);
}

TEST_CASE("status read from JSON takes defaults for missing fields but not for wrong types",
          "[control][protocol]") {
  const auto pool =
      json::parse(R"({"name":"app","workers":[{"index":2,"state":"ready"}]})").get<PoolStatus>();
  CHECK(pool.name == "app");
  CHECK_FALSE(pool.failing);
  REQUIRE(pool.workers.size() == 1);
  CHECK(pool.workers[0].index == 2);
  CHECK(pool.workers[0].pid == 0);
  CHECK(pool.workers[0].state == "ready");
  CHECK_THROWS_AS(json::parse(R"({"listen":"x"})").get<PoolStatus>(), json::exception);
  CHECK_THROWS_AS(json::parse(R"({"name":"app","failing":"yes"})").get<PoolStatus>(),
                  json::exception);
}

TEST_CASE("a request line parses into its command and arguments", "[control][protocol]") {
  auto status = parsed(R"({"command":"status"})");
  CHECK(status.command == Command::status);
  CHECK(status.pool.empty());
  CHECK(parsed(R"({"command":"status","pool":"app"})").pool == "app");

  auto restart = parsed(R"({"command":"restart","pool":"app","worker":3,"id":"r1"})");
  CHECK(restart.command == Command::restart);
  CHECK(restart.target() == WorkerTarget{"app", 3u});
  CHECK(restart.id == "r1");
  CHECK_FALSE(parsed(R"({"command":"stop","pool":"app"})").worker);

  auto scale = parsed(R"({"command":"scale","pool":"app","workers":8})");
  CHECK(scale.workers == 8);
  auto drain = parsed(R"({"command":"drain","pool":"app","worker":0,"wait":true})");
  CHECK(drain.wait);
  CHECK(drain.worker == 0u);
  auto logs = parsed(R"({"command":"logs","pool":"app","lines":50,"follow":true})");
  CHECK(logs.lines == 50);
  CHECK(logs.follow);
  CHECK(parsed(R"({"command":"logs","pool":"app"})").lines == kDefaultLogLines);
  CHECK(parsed(" {\"command\":\"reload\"}  ").command == Command::reload);
}

TEST_CASE("every malformed request gets an error naming the problem", "[control][protocol]") {
  CHECK_THAT(error_for("{\"command\":"),
             Catch::StartsWith("malformed JSON: parse error at line 1"));
  CHECK_THAT(error_for("status"), Catch::StartsWith("malformed JSON"));
  CHECK_THAT(error_for(""), Catch::StartsWith("malformed JSON"));
  CHECK_THAT(error_for("[1,2]"),
             Catch::Contains("must be a JSON object") && Catch::Contains("not an array"));
  CHECK_THAT(error_for("\"status\""), Catch::Contains("not a string"));
  CHECK_THAT(error_for("{}"), Catch::StartsWith("missing \"command\": one of status, start"));
  CHECK(error_for(R"({"command":7})") == "\"command\" must be a string");
  CHECK_THAT(error_for(R"({"command":"explode"})"),
             Catch::StartsWith("unknown command \"explode\": one of status"));
  CHECK(error_for(R"({"command":"status","pol":"app"})") ==
        "\"pol\" is not an argument of status (it takes pool)");
  CHECK(error_for(R"({"command":"reload","pool":"app"})") ==
        "\"pool\" is not an argument of reload (it takes none)");
  CHECK_THAT(error_for(R"({"command":"restart"})"), Catch::StartsWith("restart needs \"pool\""));
  CHECK_THAT(error_for(R"({"command":"restart","pool":""})"), Catch::Contains("empty"));
  CHECK_THAT(error_for(R"({"command":"drain","pool":"app"})"),
             Catch::StartsWith("drain needs \"worker\""));
  CHECK_THAT(error_for(R"({"command":"scale","pool":"app"})"),
             Catch::StartsWith("scale needs \"workers\""));
  CHECK(error_for(R"({"command":"status","pool":3})") ==
        "\"pool\" must be a string, the pool's name");
  for (const char* worker : {"-1", "1.5", "\"1\"", "4294967296", "null"}) {
    INFO(worker);
    CHECK_THAT(error_for(std::string(R"({"command":"stop","pool":"app","worker":)") + worker + "}"),
               Catch::StartsWith("\"worker\" must be a worker index"));
  }
  CHECK_THAT(error_for(R"({"command":"logs","pool":"app","lines":100001})"),
             Catch::StartsWith("\"lines\" must be a whole number from 0 to 100000"));
  CHECK(error_for(R"({"command":"drain","pool":"app","worker":1,"wait":1})") ==
        "\"wait\" must be true or false");
  CHECK(error_for(R"({"command":"status","id":{"a":1}})") == "\"id\" must be a string or a number");
}

TEST_CASE("the id is known even when the rest of the request is wrong", "[control][protocol]") {
  json id;
  CHECK_FALSE(parse_request(R"({"id":42,"command":"explode"})", id));
  CHECK(id == 42);
  CHECK_FALSE(parse_request("not json", id));
  CHECK(id.is_null());
}

TEST_CASE("a deeply nested line is an error and not a crash", "[control][protocol]") {
  const std::string deep(kMaxRequestBytes, '[');
  CHECK_THAT(error_for(deep), Catch::StartsWith("malformed JSON"));
  std::string nested_object = R"({"command":"status","pool":)";
  for (int i = 0; i < 20'000; ++i)
    nested_object += "[";
  CHECK_THAT(error_for(nested_object), Catch::StartsWith("malformed JSON"));
  // Valid JSON nested as deep as a line allows: parsed and freed without recursion.
  const std::string balanced =
      std::string(kMaxRequestBytes / 2, '[') + std::string(kMaxRequestBytes / 2, ']');
  CHECK_THAT(error_for(balanced), Catch::Contains("not an array"));
  const std::string in_an_argument =
      R"({"command":"status","pool":)" + std::string(30'000, '[') + std::string(30'000, ']') + "}";
  CHECK(error_for(in_an_argument) == "\"pool\" must be a string, the pool's name");
}

TEST_CASE("a number out of range anywhere in a request is an error, not an exception",
          "[control][protocol]") {
  for (const char* line :
       {R"({"command":"status","id":1e400})", R"({"command":"status","id":-1e400})",
        R"({"command":"scale","pool":"app","workers":1e400})",
        R"({"command":"status","x":[1,2,1e999]})", "1e400"}) {
    INFO(line);
    json id = "stale";
    scgi::Result<Request> request = scgi::Result<Request>::fail("not parsed");
    REQUIRE_NOTHROW(request = parse_request(line, id));
    REQUIRE_FALSE(request);
    CHECK_THAT(request.error(), Catch::StartsWith("malformed JSON: number overflow parsing '"));
    CHECK(id.is_null());
    // Its error reply is a line scgictl reads.
    auto reply = parse_reply(error_reply(id, request.error()));
    REQUIRE(reply);
    CHECK_FALSE(reply.value().ok);
  }
  // Large but finite numbers are numbers: the argument's own check answers.
  CHECK_THAT(error_for(R"({"command":"scale","pool":"app","workers":1e300})"),
             Catch::StartsWith("\"workers\" must be a whole number"));
  CHECK_THAT(
      error_for(R"({"command":"scale","pool":"app","workers":123456789012345678901234567890})"),
      Catch::StartsWith("\"workers\" must be a whole number"));
  CHECK(parsed(R"({"command":"status","id":1e300})").id == 1e300);
  CHECK(parsed(R"({"command":"status","id":1e-400})").id == 0.0);
}

TEST_CASE("bytes that are not UTF-8 and escapes of lone surrogates are errors",
          "[control][protocol]") {
  CHECK_THAT(error_for("{\"command\":\"status\",\"pool\":\"\xff\xfe\"}"),
             Catch::StartsWith("malformed JSON"));
  CHECK_THAT(error_for(R"({"command":"status","pool":"\ud800"})"),
             Catch::StartsWith("malformed JSON"));
  // A byte order mark before the object is skipped, as JSON parsers may.
  CHECK(parsed("\xef\xbb\xbf{\"command\":\"reload\"}").command == Command::reload);
  // The reply to such a line is still valid JSON (U+FFFD for the bad bytes).
  json id;
  auto request = parse_request("{\"command\":\"\xc3\"}", id);
  REQUIRE_FALSE(request);
  CHECK_NOTHROW(json::parse(error_reply(id, request.error())));
}

TEST_CASE("a long name in a request is echoed only in part", "[control][protocol]") {
  const std::string long_name(10'000, 'k');
  const std::string unknown_key = error_for(R"({"command":"status",")" + long_name + R"(":1})");
  CHECK_THAT(unknown_key, Catch::Contains("is not an argument of status"));
  CHECK(unknown_key.size() < 200);
  const std::string unknown_command = error_for(R"({"command":")" + long_name + R"("})");
  CHECK_THAT(unknown_command, Catch::StartsWith("unknown command \"kkkk"));
  CHECK(unknown_command.size() < 300);
}

TEST_CASE("request_line writes what parse_request reads", "[control][protocol]") {
  std::vector<Request> requests(6);
  requests[0].command = Command::status;
  requests[1].command = Command::restart;
  requests[1].pool = "app";
  requests[1].worker = 2;
  requests[1].id = 7;
  requests[2].command = Command::scale;
  requests[2].pool = "app";
  requests[2].workers = 0;
  requests[3].command = Command::drain;
  requests[3].pool = "web";
  requests[3].worker = 0;
  requests[3].wait = true;
  requests[4].command = Command::logs;
  requests[4].pool = "app";
  requests[4].lines = 0;
  requests[4].follow = true;
  requests[5].command = Command::reload;
  for (const Request& request : requests) {
    const std::string line = request_line(request);
    INFO(line);
    REQUIRE(line.back() == '\n');
    CHECK(line.find('\n') == line.size() - 1);
    const Request back = parsed(line.substr(0, line.size() - 1));
    CHECK(back.command == request.command);
    CHECK(back.id == request.id);
    CHECK(back.pool == request.pool);
    CHECK(back.worker == request.worker);
    CHECK(back.workers == request.workers);
    CHECK(back.wait == request.wait);
    CHECK(back.lines == request.lines);
    CHECK(back.follow == request.follow);
  }
  CHECK(request_line(requests[0]) == "{\"command\":\"status\"}\n");
}

TEST_CASE("targets are POOL or POOL:WORKER", "[control][protocol]") {
  CHECK(parse_target("app").value() == WorkerTarget{"app", std::nullopt});
  CHECK(parse_target("app:0").value() == WorkerTarget{"app", 0u});
  CHECK(parse_target("my-app_2:15").value() == WorkerTarget{"my-app_2", 15u});
  CHECK(to_string(WorkerTarget{"app", 3u}) == "app:3");
  for (const char* bad :
       {"", ":1", "app:", "app:x", "app:-1", "app:1:2", "app: 1", "app:99999999999"}) {
    INFO(bad);
    CHECK_FALSE(parse_target(bad));
  }
  CHECK_THAT(parse_target("app:x").error(), Catch::Contains("e.g. app:0"));
}

TEST_CASE("replies are one line each with the id when there is one", "[control][protocol]") {
  CHECK(ok_reply(nullptr) == "{\"ok\":true}\n");
  CHECK(ok_reply(5, json{{"message", "restarted"}}) ==
        "{\"id\":5,\"message\":\"restarted\",\"ok\":true}\n");
  CHECK(error_reply("a", "no pool named x") ==
        "{\"error\":\"no pool named x\",\"id\":\"a\",\"ok\":false}\n");
  CHECK(log_line("app[0] 42| hello \"you\"") == "{\"log\":\"app[0] 42| hello \\\"you\\\"\"}\n");

  auto ok = parse_reply(R"({"ok":true,"message":"m"})");
  REQUIRE(ok);
  CHECK(ok.value().ok);
  CHECK(ok.value().body["message"] == "m");
  auto failed = parse_reply(R"({"ok":false,"error":"nope"})");
  REQUIRE(failed);
  CHECK_FALSE(failed.value().ok);
  CHECK(failed.value().error == "nope");
  auto log = parse_reply(R"({"log":"a line"})");
  REQUIRE(log);
  CHECK(log.value().is_log);
  CHECK(log.value().log == "a line");
  CHECK_FALSE(parse_reply("{\"message\":\"m\"}"));
  CHECK_FALSE(parse_reply("[]"));
  CHECK_FALSE(parse_reply("HTTP/1.1 400"));
}

TEST_CASE("worker output that is not UTF-8 still makes a valid line", "[control][protocol]") {
  const std::string line = log_line(std::string("caf\xe9 \xff\xfe end"));
  const auto back = json::parse(line);
  CHECK(back["log"] == "caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd end");
  CHECK_NOTHROW(error_reply(nullptr, "bad \xc3"));
}
