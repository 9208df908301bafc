#include <catch2/catch.hpp>

#include "discovery/discovery_plan.hpp"

using scgi::proxy::Backend;
using scgi::proxy::EmptyAnswerHold;
using scgi::proxy::plan_membership;

namespace {

using Names = std::vector<std::string>;
constexpr auto ready = Backend::Membership::ready;
constexpr auto draining = Backend::Membership::draining;

}  // namespace

TEST_CASE("a discovered address not in the pool is added", "[discovery]") {
  const auto plan = plan_membership({{"10.0.0.1:5000", ready}}, {"10.0.0.1:5000", "10.0.0.2:5000"});
  CHECK(plan.add == Names{"10.0.0.2:5000"});
  CHECK(plan.undrain.empty());
  CHECK(plan.drain.empty());
}

TEST_CASE("an address gone from DNS is drained, not removed at once", "[discovery]") {
  const auto plan =
      plan_membership({{"10.0.0.1:5000", ready}, {"10.0.0.2:5000", ready}}, {"10.0.0.2:5000"});
  CHECK(plan.drain == Names{"10.0.0.1:5000"});
  CHECK(plan.add.empty());
  CHECK(plan.undrain.empty());
}

TEST_CASE("an address back in DNS while draining is undrained, not added twice", "[discovery]") {
  const auto plan = plan_membership({{"10.0.0.1:5000", draining}}, {"10.0.0.1:5000"});
  CHECK(plan.undrain == Names{"10.0.0.1:5000"});
  CHECK(plan.add.empty());
  CHECK(plan.drain.empty());
}

TEST_CASE("a backend already draining and still unlisted is left to finish", "[discovery]") {
  const auto plan = plan_membership({{"10.0.0.1:5000", draining}}, {});
  CHECK(plan.add.empty());
  CHECK(plan.undrain.empty());
  CHECK(plan.drain.empty());
}

TEST_CASE("a removed backend listed again is added anew", "[discovery]") {
  const auto plan =
      plan_membership({{"10.0.0.1:5000", Backend::Membership::removed}}, {"10.0.0.1:5000"});
  CHECK(plan.add == Names{"10.0.0.1:5000"});
}

TEST_CASE("the same answer twice changes nothing", "[discovery]") {
  const auto plan = plan_membership({{"10.0.0.1:5000", ready}, {"[fd00::1]:5000", ready}},
                                    {"10.0.0.1:5000", "[fd00::1]:5000"});
  CHECK(plan.add.empty());
  CHECK(plan.undrain.empty());
  CHECK(plan.drain.empty());
}

TEST_CASE("backends that did not come from DNS are drained when a pool starts following it",
          "[discovery]") {
  // A pool changed from backends to discover keeps its fixed backends until
  // the first answer, which does not list a name like "localhost:5000".
  const auto plan =
      plan_membership({{"localhost:5000", ready}, {"unix:/run/a.sock", ready}}, {"127.0.0.1:5000"});
  CHECK(plan.add == Names{"127.0.0.1:5000"});
  CHECK(plan.drain == Names{"localhost:5000", "unix:/run/a.sock"});
}

TEST_CASE("an empty answer is believed only when it repeats", "[discovery]") {
  EmptyAnswerHold hold;
  for (std::uint32_t i = 1; i < EmptyAnswerHold::kAnswersToBelieve; ++i)
    CHECK_FALSE(hold.believe_empty());
  CHECK(hold.believe_empty());
  CHECK(hold.believe_empty());  // and stays believed while it lasts
}

TEST_CASE("addresses in between restart the count of empty answers", "[discovery]") {
  EmptyAnswerHold hold;
  for (std::uint32_t i = 1; i < EmptyAnswerHold::kAnswersToBelieve; ++i)
    CHECK_FALSE(hold.believe_empty());
  hold.saw_addresses();
  CHECK(hold.empty_in_a_row() == 0);
  CHECK_FALSE(hold.believe_empty());
}
