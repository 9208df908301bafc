// `scgictl slowlog`: the manager's slow log entries (docs/control-protocol.md)
// as text for a person, oldest first.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace scgi::ctl {

// One block per entry; fields a newer or older manager does not send are left out.
std::string render_slowlog(const nlohmann::json& entries);

}  // namespace scgi::ctl
