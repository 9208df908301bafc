#include "scgi/config.hpp"

#include <fmt/format.h>

#include <csignal>

namespace scgi {
namespace {

std::string count(std::uint64_t n, std::string_view noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}

std::string range(std::uint64_t min, std::uint64_t max, std::string_view noun) {
  if (min == max) return count(min, noun);
  return fmt::format("{}-{} {}s", min, max, noun);
}

std::string describe_pool(const PoolConfig& pool) {
  std::string source;
  switch (pool.kind) {
    case PoolKind::command:
      source = range(pool.min_workers, pool.max_workers, "worker");
      break;
    case PoolKind::backends:
      source = count(pool.backends.size(), "backend");
      break;
    case PoolKind::discover:
      source = pool.discover ? fmt::format("dns:{}:{}", pool.discover->name, pool.discover->port)
                             : std::string("dns");
      break;
  }
  const std::string listen =
      pool.listen ? "listen " + pool.listen->to_string() : std::string("not balanced");
  return fmt::format("{} ({}, {})", pool.name, source, listen);
}

}  // namespace

std::string ConfigError::to_string() const {
  if (line == 0) return fmt::format("{}: {}", file, message);
  return fmt::format("{}:{}:{}: {}", file, line, column, message);
}

ConfigResult ConfigResult::ok(Config config) {
  ConfigResult result;
  result.config_ = std::move(config);
  return result;
}

ConfigResult ConfigResult::fail(std::vector<ConfigError> errors) {
  ConfigResult result;
  result.errors_ = std::move(errors);
  return result;
}

namespace {

struct SignalName {
  int number;
  std::string_view name;
};
constexpr SignalName kSlowRequestSignals[] = {{SIGUSR1, "SIGUSR1"},
                                              {SIGUSR2, "SIGUSR2"},
                                              {SIGQUIT, "SIGQUIT"},
                                              {SIGWINCH, "SIGWINCH"},
                                              {SIGPROF, "SIGPROF"}};

}  // namespace

std::optional<int> slow_request_signal_number(std::string_view name) {
  for (const SignalName& signal : kSlowRequestSignals)
    if (signal.name == name) return signal.number;
  return std::nullopt;
}

std::string_view slow_request_signal_name(int number) {
  for (const SignalName& signal : kSlowRequestSignals)
    if (signal.number == number) return signal.name;
  return {};
}

std::string summarize(const Config& config) {
  std::string pools;
  for (const PoolConfig& pool : config.pools)
    pools += (pools.empty() ? "" : ", ") + describe_pool(pool);
  return fmt::format("{}: OK, {}: {}", config.path, count_pools_and_workers(config), pools);
}

std::string count_pools_and_workers(const Config& config) {
  std::uint64_t min_workers = 0;
  std::uint64_t max_workers = 0;
  for (const PoolConfig& pool : config.pools) {
    if (pool.kind == PoolKind::command) {
      min_workers += pool.min_workers;
      max_workers += pool.max_workers;
    }
  }
  std::string out = count(config.pools.size(), "pool");
  if (max_workers > 0) out += ", " + range(min_workers, max_workers, "worker");
  return out;
}

}  // namespace scgi
