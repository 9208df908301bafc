#include "discovery/discovery_plan.hpp"

namespace scgi::proxy {

MembershipPlan plan_membership(const std::map<std::string, Backend::Membership>& pool,
                               const std::set<std::string>& listed) {
  MembershipPlan plan;
  for (const std::string& name : listed) {
    const auto it = pool.find(name);
    if (it == pool.end() || it->second == Backend::Membership::removed)
      plan.add.push_back(name);
    else if (it->second == Backend::Membership::draining)
      plan.undrain.push_back(name);
  }
  for (const auto& [name, membership] : pool)
    if (membership == Backend::Membership::ready && !listed.count(name)) plan.drain.push_back(name);
  return plan;
}

}  // namespace scgi::proxy
