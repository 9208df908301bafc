#include "scgi/runtime/handover_bytes.hpp"

namespace scgi {

std::string bytes_to_json_text(std::string_view bytes) {
  std::string text;
  text.reserve(bytes.size());
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x80) {
      text += c;
    } else {
      text += static_cast<char>(0xc0 | (byte >> 6));  // 0xc2 or 0xc3
      text += static_cast<char>(0x80 | (byte & 0x3f));
    }
  }
  return text;
}

std::optional<std::string> bytes_from_json_text(std::string_view text) {
  std::string bytes;
  bytes.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      bytes += text[i];
      continue;
    }
    if ((lead != 0xc2 && lead != 0xc3) || i + 1 == text.size()) return std::nullopt;
    const auto next = static_cast<unsigned char>(text[++i]);
    if ((next & 0xc0) != 0x80) return std::nullopt;
    bytes += static_cast<char>(((lead & 0x1f) << 6) | (next & 0x3f));
  }
  return bytes;
}

}  // namespace scgi
