#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "byte_ring.hpp"

using namespace scgi::proxy;

namespace {

// Copies `text` into the ring's free space, as a socket read would.
std::size_t put(ByteRing& ring, const std::string& text) {
  std::size_t copied = 0;
  for (const auto& piece : ring.free_space()) {
    const std::size_t n = std::min(piece.size(), text.size() - copied);
    if (n == 0) continue;  // an empty piece may have no address
    std::memcpy(piece.data(), text.data() + copied, n);
    copied += n;
  }
  ring.commit(copied);
  return copied;
}

std::string held(const ByteRing& ring) {
  std::string out;
  for (const auto& piece : ring.contents())
    out.append(static_cast<const char*>(piece.data()), piece.size());
  return out;
}

}  // namespace

TEST_CASE("a ring hands bytes through in order across its wrap", "[byte-ring]") {
  ByteRing ring(8);
  CHECK(put(ring, "abcdef") == 6);
  ring.consume(4);
  CHECK(held(ring) == "ef");
  CHECK(ring.room() == 6);
  CHECK(put(ring, "ghijklmn") == 6);  // wraps: 2 at the end, 4 at the start
  CHECK(held(ring) == "efghijkl");
  CHECK(ring.room() == 0);
  CHECK(asio::buffer_size(ring.free_space()) == 0);
  ring.consume(3);
  CHECK(held(ring) == "hijkl");
  CHECK(put(ring, "xyz") == 3);
  CHECK(held(ring) == "hijklxyz");
  ring.consume(8);
  CHECK(ring.empty());
  // Empty: the next bytes start at the beginning again, in one piece.
  CHECK(ring.free_space()[0].size() == 8);
}

TEST_CASE("a ring grows up to its limit and keeps what it holds", "[byte-ring]") {
  ByteRing ring(4);
  put(ring, "abcd");
  ring.consume(2);
  put(ring, "ef");  // wrapped
  REQUIRE(ring.grow(10));
  CHECK(ring.capacity() == 8);
  CHECK(held(ring) == "cdef");
  REQUIRE(ring.grow(10));
  CHECK(ring.capacity() == 10);
  CHECK_FALSE(ring.grow(10));
  CHECK(put(ring, "0123456789") == 6);
  CHECK(held(ring) == "cdef012345");
}
