// A value or a message saying why there is none. g++ 12 in C++20 mode has no
// std::expected; parsers of user input return this instead of throwing.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace scgi {

template <class T>
class Result {
 public:
  static Result ok(T value) { return Result(std::in_place_index<0>, std::move(value)); }
  static Result fail(std::string message) {
    return Result(std::in_place_index<1>, std::move(message));
  }

  explicit operator bool() const { return state_.index() == 0; }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const std::string& error() const { return std::get<1>(state_); }

 private:
  template <std::size_t I, class U>
  Result(std::in_place_index_t<I> index, U&& content) : state_(index, std::forward<U>(content)) {}

  std::variant<T, std::string> state_;
};

}  // namespace scgi
