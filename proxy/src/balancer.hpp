// The least-busy choice, as a pure function: given each candidate's load and
// limit, and where to start looking among equals, which one takes the request.
// Health, membership and the queue live elsewhere; this only chooses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace scgi::proxy {

struct Candidate {
  std::uint32_t in_flight = 0;
  std::uint32_t concurrency = 1;  // at least 1
  bool eligible = true;           // routable and not excluded for this request
};

// The eligible candidate with the lowest in_flight/concurrency that is below its
// concurrency; among equals, the first at or after `rotation` (mod size), so that
// a caller advancing `rotation` per pick spreads ties evenly. nullopt when every
// eligible candidate is full (the request should wait in the queue) or none is eligible.
std::optional<std::size_t> choose_least_busy(std::span<const Candidate> candidates,
                                             std::size_t rotation);

}  // namespace scgi::proxy
