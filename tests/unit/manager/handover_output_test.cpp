// Worker output in an upgrade's handed state: the kept lines taken over in
// order and bounded, and the state check refusing output no image could have
// handed.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "output_lines.hpp"
#include "scgi/runtime/handover_bytes.hpp"
#include "supervisor.hpp"
#include "worker_logs.hpp"

using nlohmann::json;
using namespace scgi;
using namespace scgi::manager;

namespace {

// The smallest pool state the check takes, with `extra` keys added.
json pool_state(const json& extra) {
  json pool{{"target", 1},
            {"next_instance", 0},
            {"restarts", json::object()},
            {"failures", json::array()},
            {"failing", false},
            {"workers", json::array()},
            {"outputs", json::object()}};
  pool.update(extra);
  return {{"runtime_dir", "/run/scgi"}, {"pools", {{"app", pool}}}};
}

}  // namespace

TEST_CASE("a splitter fed the partial line of another goes on where it was", "[manager][upgrade]") {
  std::vector<std::pair<std::string, bool>> out;
  const auto sink = [&](std::string_view line, bool continued) {
    out.emplace_back(std::string(line), continued);
  };
  OutputLines before(sink, 4);
  before.feed("ab\nwxyz");  // a full piece held: whether it continues is not known yet
  REQUIRE(before.partial() == "wxyz");
  OutputLines after(sink, 4);
  after.feed(before.partial());
  after.feed("!\n");
  CHECK(out ==
        std::vector<std::pair<std::string, bool>>{{"ab", false}, {"wxyz", true}, {"!", false}});
}

TEST_CASE("kept lines taken over come before the new image's own, up to kRecentLines",
          "[manager][upgrade]") {
  WorkerLogs logs("", WorkerLogs::kDefaultMaxFileBytes, 0, -1);
  logs.write("app", 0, 42, "after", false);
  std::vector<WorkerLogs::RecentLine> handed;
  for (std::size_t i = 0; i < WorkerLogs::kRecentLines; ++i)
    handed.push_back({1, "before-" + std::to_string(i)});
  logs.adopt_kept_lines("app", handed);
  const auto kept = logs.kept_lines("app");
  REQUIRE(kept.size() == WorkerLogs::kRecentLines);
  CHECK(kept.front().line == "before-1");  // the oldest dropped
  CHECK(kept[kept.size() - 2].line == "before-" + std::to_string(WorkerLogs::kRecentLines - 1));
  CHECK(kept.back().line.ends_with("| after"));
  CHECK(logs.recent("app", 1, 1) == std::vector<std::string>{kept[kept.size() - 2].line});
}

TEST_CASE("the upgrade check takes handed worker output, or its absence, and refuses it malformed",
          "[manager][upgrade]") {
  CHECK_FALSE(Supervisor::check_handover(pool_state(json::object())));
  CHECK_FALSE(Supervisor::check_handover(
      pool_state({{"partial_lines", {{"7", bytes_to_json_text("abc\xff")}}},
                  {"recent_lines", {{{"worker", 0}, {"line", "a line"}}}}})));
  for (const json& bad :
       {json{{"partial_lines", {{"7", "\xc4\x80"}}}}, json{{"partial_lines", {{"seven", "abc"}}}},
        json{{"partial_lines", {{"7", "two\nlines"}}}}, json{{"partial_lines", {{"7", 3}}}},
        json{{"recent_lines", {{{"worker", -1}, {"line", "x"}}}}},
        json{{"recent_lines", {{{"worker", 0}}}}},
        json{{"recent_lines", {{{"worker", 0}, {"line", "a\nb"}}}}}}) {
    INFO(bad.dump());
    CHECK(Supervisor::check_handover(pool_state(bad)));
  }
}
