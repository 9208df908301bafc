// What DNS discovery reports to metrics (scgi_discovery_resolutions_total,
// scgi_discovered_backends): written on the control thread, read by scrapes
// from the exposer's threads, hence atomics. One per discover pool, kept
// across reloads so that its counters never go back.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace scgi::proxy {

enum class ResolutionResult {
  ok,     // addresses came back
  empty,  // an authoritative answer without addresses (NXDOMAIN, NODATA)
  error,  // no usable answer: timeout, SERVFAIL, REFUSED, unreachable server
};
inline constexpr std::array<const char*, 3> kResolutionResults{"ok", "empty", "error"};

struct DiscoveryStats {
  std::array<std::atomic<std::uint64_t>, 3> resolutions{};
  // Backends the pool has from DNS that take new requests (not draining).
  std::atomic<std::uint32_t> backends{0};

  void count(ResolutionResult result) {
    resolutions[static_cast<std::size_t>(result)].fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace scgi::proxy
