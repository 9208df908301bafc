// Bytes in an upgrade's handed state: kept exact through strict JSON.
#include "scgi/runtime/handover_bytes.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <string>

using nlohmann::json;
using namespace scgi;

TEST_CASE("every byte goes through the handed state's JSON and back exactly", "[upgrade]") {
  std::string all;
  for (int byte = 0; byte < 256; ++byte)
    all += static_cast<char>(byte);
  const std::string text = json(bytes_to_json_text(all)).dump();  // strict: UTF-8 only
  CHECK(bytes_from_json_text(json::parse(text).get<std::string>()) == all);
  CHECK(bytes_to_json_text("plain ASCII") == "plain ASCII");
  CHECK_FALSE(bytes_from_json_text("\xc4\x80"));  // U+0100: no byte
  CHECK_FALSE(bytes_from_json_text("\xc3"));      // cut short
  CHECK_FALSE(bytes_from_json_text("\xff"));
}
