// The pure decisions of DNS discovery, apart from any socket or timer: what a
// new DNS answer changes in a pool's membership, and when an empty answer is
// believed. The discoverer (dns_discoverer.hpp) carries them out.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "scgi/proxy/backend.hpp"

namespace scgi::proxy {

// What to do to a pool so that its backends follow the addresses DNS gave.
struct MembershipPlan {
  std::vector<std::string> add;      // listed, not in the pool: probe, then add
  std::vector<std::string> undrain;  // listed again while still draining: ready again
  std::vector<std::string> drain;    // ready in the pool, no longer listed: drain, then remove
};

// `pool`: each backend the pool has now (by name, "IP:PORT") and its
// membership; `listed`: the backend names the answer in force lists. Draining
// backends that are still unlisted are left alone: their drain goes on.
MembershipPlan plan_membership(const std::map<std::string, Backend::Membership>& pool,
                               const std::set<std::string>& listed);

// The empty-answer rule. An authoritative "no such name" (NXDOMAIN) or "no
// address" (NODATA) answer is believed only once it has come this many times
// in a row: a zone that is briefly empty while it is reloaded or re-created
// must not empty the pool, yet a Kubernetes headless Service whose pods are
// all gone (it then answers NXDOMAIN) must drain them soon. A failed
// resolution (timeout, SERVFAIL, REFUSED, no server) says nothing about the
// name and neither counts nor resets; a non-empty answer resets.
class EmptyAnswerHold {
 public:
  static constexpr std::uint32_t kAnswersToBelieve = 3;

  // An empty answer came: true when it is to be believed now (drain all).
  bool believe_empty() { return ++empty_in_a_row_ >= kAnswersToBelieve; }
  void saw_addresses() { empty_in_a_row_ = 0; }
  std::uint32_t empty_in_a_row() const { return empty_in_a_row_; }

 private:
  std::uint32_t empty_in_a_row_ = 0;
};

}  // namespace scgi::proxy
