// The bytes of a response between the backend and the client: read from one
// socket into free_space(), written to the other from contents(). It starts
// small (the common response passes through without ever filling it) and
// grows, up to a bound, only while a client reads slower than its backend
// writes.
#pragma once

#include <asio/buffer.hpp>

#include <array>
#include <cstddef>
#include <memory>

namespace scgi::proxy {

class ByteRing {
 public:
  using MutablePieces = std::array<asio::mutable_buffer, 2>;
  using ConstPieces = std::array<asio::const_buffer, 2>;

  explicit ByteRing(std::size_t capacity);

  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  std::size_t room() const { return capacity_ - size_; }
  bool empty() const { return size_ == 0; }

  // The free bytes in order, in one or two pieces (the second may be empty).
  MutablePieces free_space();
  // `n` bytes were written to the start of free_space().
  void commit(std::size_t n);
  // The bytes held, oldest first, in one or two pieces.
  ConstPieces contents() const;
  // The oldest `n` bytes have been sent.
  void consume(std::size_t n);
  // At least doubles the capacity, never beyond `limit`, keeping the contents;
  // false when it is at `limit` already.
  bool grow(std::size_t limit);

 private:
  std::unique_ptr<char[]> data_;
  std::size_t capacity_;
  std::size_t start_ = 0;  // of the oldest byte held
  std::size_t size_ = 0;
};

}  // namespace scgi::proxy
