// The property check of the fuzz targets: a broken property names itself on
// stderr and aborts, which libFuzzer records as a crash together with its input.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition)                                                       \
  do {                                                                              \
    if (!(condition)) ::scgi_fuzz::property_broken(#condition, __FILE__, __LINE__); \
  } while (false)

namespace scgi_fuzz {

[[noreturn]] inline void property_broken(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: property broken: %s\n", file, line, condition);
  std::abort();
}

}  // namespace scgi_fuzz
