#include <catch2/catch.hpp>

#include "scgi/log.hpp"

using namespace scgi;
using namespace std::string_literals;

TEST_CASE("untrusted text in a log line can neither end the line nor reach the terminal raw",
          "[log]") {
  CHECK(quote_for_log("/path?q=1") == "\"/path?q=1\"");
  CHECK(quote_for_log("") == "\"\"");
  CHECK(quote_for_log("/x\n2026-12-03T00:00:00.000Z warn fake line") ==
        "\"/x\\n2026-12-03T00:00:00.000Z warn fake line\"");
  CHECK(quote_for_log("a\rb\tc") == "\"a\\rb\\tc\"");
  CHECK(quote_for_log("\x1b[31mred\x1b[0m") == "\"\\x1b[31mred\\x1b[0m\"");
  CHECK(quote_for_log("nul\0byte"s) == "\"nul\\x00byte\"");
  CHECK(quote_for_log("del\x7f") == "\"del\\x7f\"");
  CHECK(quote_for_log("say \"hi\" \\o/") == "\"say \\\"hi\\\" \\\\o/\"");
}

TEST_CASE("valid UTF-8 stays readable in a log line, anything else is shown byte by byte",
          "[log]") {
  CHECK(quote_for_log("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  CHECK(quote_for_log("\xff\xfe") == "\"\\xff\\xfe\"");
  CHECK(quote_for_log("\xc3") == "\"\\xc3\"");                             // truncated
  CHECK(quote_for_log("\xc0\xaf") == "\"\\xc0\\xaf\"");                    // overlong '/'
  CHECK(quote_for_log("\xed\xa0\x80") == "\"\\xed\\xa0\\x80\"");           // a surrogate
  CHECK(quote_for_log("\xf4\x90\x80\x80") == "\"\\xf4\\x90\\x80\\x80\"");  // past U+10FFFF
  CHECK(quote_for_log("\xc2\x9b"
                      "31m") == "\"\\xc2\\x9b31m\"");  // C1 CSI
}

TEST_CASE("utf8_sequence_length follows RFC 3629", "[log]") {
  CHECK(utf8_sequence_length("a") == 1);
  CHECK(utf8_sequence_length("\xc3\xa9") == 2);
  CHECK(utf8_sequence_length("\xe2\x82\xac") == 3);
  CHECK(utf8_sequence_length("\xf0\x9f\x98\x80") == 4);
  CHECK(utf8_sequence_length("\x80") == 0);
  CHECK(utf8_sequence_length("\xe0\x80\x80") == 0);
  CHECK(utf8_sequence_length("") == 0);
}
