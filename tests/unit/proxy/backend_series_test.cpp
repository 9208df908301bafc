#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "scgi/proxy/backend_series.hpp"

using namespace scgi::proxy;

namespace {

// A backend as Pool::add_backend makes it: a slot label counts into the book.
std::shared_ptr<Backend> backend(BackendSeriesBook& book, const std::string& address,
                                 const std::string& label = {}) {
  return std::make_shared<Backend>(address, std::vector<scgi::Endpoint>{}, 1, label,
                                   label.empty() ? nullptr : book.counters_for(label));
}

}  // namespace

TEST_CASE("backends with an address label have one series each, gone with them", "[series]") {
  BackendSeriesBook book;
  const auto a = backend(book, "127.0.0.1:5001");
  const auto b = backend(book, "127.0.0.1:5002");
  a->count_error(BackendErrorKind::connect);
  auto series = book.series({a, b});
  REQUIRE(series.size() == 2);
  CHECK(series[0].label == "127.0.0.1:5001");
  CHECK(series[0].live);
  CHECK(series[0].errors[0] == 1);
  series = book.series({b});
  REQUIRE(series.size() == 1);  // an address's counters end with it
  CHECK(series[0].label == "127.0.0.1:5002");
}

TEST_CASE("a slot's series outlives its workers, and its counters never go down", "[series]") {
  BackendSeriesBook book;
  const auto first = backend(book, "127.0.0.1:6001", "app:0");
  first->count_error(BackendErrorKind::reset);
  first->count_error(BackendErrorKind::reset);
  REQUIRE(first->try_reserve());
  // Its replacement serves while it drains: one series, the two added up.
  const auto second = backend(book, "127.0.0.1:6002", "app:0");
  second->count_error(BackendErrorKind::timeout);
  auto series = book.series({first, second});
  REQUIRE(series.size() == 1);
  CHECK(series[0].label == "app:0");
  CHECK(series[0].in_flight == 1);
  CHECK(series[0].up);
  CHECK(series[0].concurrency == 1);
  CHECK(series[0].errors[1] == 2);
  CHECK(series[0].errors[2] == 1);
  // The old one leaves the pool: its errors stay in the slot's counters, and
  // one its last request still meets counts too.
  series = book.series({second});
  REQUIRE(series.size() == 1);
  CHECK(series[0].errors[1] == 2);
  CHECK(series[0].in_flight == 0);
  first->count_error(BackendErrorKind::timeout);
  CHECK(book.series({second})[0].errors[2] == 2);
  // No worker in the slot for now (a backoff): counters only, no gauges.
  series = book.series({});
  REQUIRE(series.size() == 1);
  CHECK_FALSE(series[0].live);
  CHECK(series[0].errors[2] == 2);
}
