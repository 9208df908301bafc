#include "byte_ring.hpp"

#include <algorithm>
#include <cstring>

namespace scgi::proxy {

// Uninitialised on purpose: zero-filling 16 KiB per request shows in profiles.
ByteRing::ByteRing(std::size_t capacity)
    : data_(std::make_unique_for_overwrite<char[]>(capacity)), capacity_(capacity) {}

ByteRing::MutablePieces ByteRing::free_space() {
  const std::size_t end = (start_ + size_) % capacity_;
  if (size_ == capacity_) return {};
  if (end >= start_)  // free: [end, capacity) then [0, start)
    return {asio::buffer(data_.get() + end, capacity_ - end), asio::buffer(data_.get(), start_)};
  return {asio::buffer(data_.get() + end, start_ - end), asio::mutable_buffer()};
}

void ByteRing::commit(std::size_t n) {
  size_ += std::min(n, room());
}

ByteRing::ConstPieces ByteRing::contents() const {
  const std::size_t first = std::min(size_, capacity_ - start_);
  return {asio::buffer(data_.get() + start_, first), asio::buffer(data_.get(), size_ - first)};
}

void ByteRing::consume(std::size_t n) {
  n = std::min(n, size_);
  size_ -= n;
  // Empty: start over at 0, so that the next read lands in one piece.
  start_ = size_ == 0 ? 0 : (start_ + n) % capacity_;
}

bool ByteRing::grow(std::size_t limit) {
  if (capacity_ >= limit) return false;
  const std::size_t capacity = std::min(std::max(capacity_ * 2, capacity_ + 1), limit);
  auto data = std::make_unique_for_overwrite<char[]>(capacity);
  const ConstPieces held = contents();
  std::size_t copied = 0;
  for (const auto& piece : held) {
    if (piece.size() == 0) continue;  // an empty piece may have no address: memcpy must not see it
    std::memcpy(data.get() + copied, piece.data(), piece.size());
    copied += piece.size();
  }
  data_ = std::move(data);
  capacity_ = capacity;
  start_ = 0;
  return true;
}

}  // namespace scgi::proxy
