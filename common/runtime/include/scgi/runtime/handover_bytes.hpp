// Bytes in an upgrade's handed state (worker output, a request head begun):
// JSON strings must be UTF-8 (the state's writer refuses anything else), the
// bytes need not be. Each
// byte is written as the character of the same number (Latin-1 into UTF-8:
// ASCII stays as it is, every other byte takes two), and read back exactly.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace scgi {

std::string bytes_to_json_text(std::string_view bytes);

// The bytes again; nullopt for text that bytes_to_json_text cannot have
// written (a character above U+00FF, or not UTF-8).
std::optional<std::string> bytes_from_json_text(std::string_view text);

}  // namespace scgi
