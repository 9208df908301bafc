#include "trace_context.hpp"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <random>

namespace scgi::proxy {
namespace {

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// A field of `size` lowercase hex digits, not all zeros when `nonzero`.
bool hex_field(std::string_view field, bool nonzero) {
  if (!std::all_of(field.begin(), field.end(), is_lower_hex)) return false;
  return !nonzero || field.find_first_not_of('0') != std::string_view::npos;
}

// Random bits for ids, from the kernel's generator (ids one can predict
// would let a client guess another's trace): a block per thread, so that 21
// traceparents cost one system call.
std::uint64_t random_bits() {
  thread_local std::array<std::uint64_t, 64> block;
  thread_local std::size_t used = block.size();
  if (used == block.size()) {
    std::size_t filled = 0;
    auto* bytes = reinterpret_cast<char*>(block.data());
    while (filled < sizeof block) {
      const ssize_t n = ::getrandom(bytes + filled, sizeof block - filled, 0);
      if (n > 0) {
        filled += static_cast<std::size_t>(n);
      } else if (errno != EINTR) {
        // No getrandom (a very old kernel): random_device reads /dev/urandom.
        std::random_device device;
        for (auto& word : block)
          word = (std::uint64_t{device()} << 32) | device();
        break;
      }
    }
    used = 0;
  }
  return block[used++];
}

void write_hex(std::uint64_t value, char* out, int digits) {
  constexpr char kDigits[] = "0123456789abcdef";
  for (int i = digits - 1; i >= 0; --i) {
    out[i] = kDigits[value & 0xf];
    value >>= 4;
  }
}

}  // namespace

bool valid_traceparent(std::string_view value) {
  if (value.size() < kTraceparentSize) return false;
  const std::string_view version = value.substr(0, 2);
  if (!hex_field(version, false) || version == "ff") return false;
  // Version 00 is exactly 55 characters; a later one may carry more after a '-'.
  if (version == "00" ? value.size() != kTraceparentSize
                      : value.size() > kTraceparentSize && value[kTraceparentSize] != '-')
    return false;
  return value[2] == '-' && value[35] == '-' && value[52] == '-' &&
         hex_field(value.substr(3, kTraceIdSize), true) && hex_field(value.substr(36, 16), true) &&
         hex_field(value.substr(53, 2), false);
}

std::array<char, kTraceparentSize> new_traceparent() {
  std::array<char, kTraceparentSize> out{};
  std::uint64_t ids[3];
  do {  // an all-zero id is invalid; one in 2^64, but never sent
    for (auto& id : ids)
      id = random_bits();
  } while ((ids[0] == 0 && ids[1] == 0) || ids[2] == 0);
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  write_hex(ids[0], &out[3], 16);
  write_hex(ids[1], &out[19], 16);
  out[35] = '-';
  write_hex(ids[2], &out[36], 16);
  out[52] = '-';
  out[53] = '0';
  out[54] = '1';
  return out;
}

}  // namespace scgi::proxy
