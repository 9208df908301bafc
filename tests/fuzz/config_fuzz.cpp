// Fuzz target for the configuration loader: whatever the file holds,
// parse_config never throws, and yields either a config that keeps the
// promises of config.hpp or a non-empty list of errors, each with a position
// in the file, in file order. Both modes read every input, twice, alike.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "fuzz_check.hpp"
#include "scgi/address.hpp"
#include "scgi/config.hpp"
#include "scgi/units.hpp"

namespace {

using scgi::ConfigError;
using scgi::ConfigResult;
using scgi::Mode;
using scgi::PoolConfig;
using scgi::PoolKind;

constexpr std::string_view kDisplayPath = "fuzz.toml";

// parse_config, with any exception that escapes reported as a broken property.
ConfigResult parse(std::string_view text, Mode mode) {
  try {
    return scgi::parse_config(text, kDisplayPath, mode);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "parse_config threw: %s\n", error.what());
  } catch (...) {
    std::fprintf(stderr, "parse_config threw something that is not a std::exception\n");
  }
  scgi_fuzz::property_broken("parse_config must not throw", __FILE__, __LINE__);
}

// Written values read back to themselves (address.hpp, units.hpp).
void check_round_trip(const scgi::Address& address) {
  const auto again = scgi::parse_address(address.to_string());
  FUZZ_CHECK(again && again.value() == address);
}

void check_round_trip(scgi::Milliseconds duration) {
  const auto again = scgi::parse_duration(scgi::format_duration(duration));
  FUZZ_CHECK(again && again.value() == duration);
}

void check_round_trip_size(std::uint64_t bytes) {
  const auto again = scgi::parse_size(scgi::format_size(bytes));
  FUZZ_CHECK(again && again.value() == bytes);
}

bool valid_pool_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

void check_pool(const PoolConfig& pool, Mode mode) {
  FUZZ_CHECK(valid_pool_name(pool.name));
  FUZZ_CHECK(pool.position.line >= 1 && pool.position.column >= 1);
  if (pool.listen) check_round_trip(*pool.listen);
  if (mode == Mode::proxy) FUZZ_CHECK(pool.listen.has_value());
  switch (pool.kind) {
    case PoolKind::command:
      FUZZ_CHECK(mode == Mode::manager);
      FUZZ_CHECK(!pool.command.empty() && !pool.command.front().empty());
      FUZZ_CHECK(pool.backends.empty() && !pool.discover);
      break;
    case PoolKind::backends:
      FUZZ_CHECK(!pool.backends.empty() && pool.command.empty() && !pool.discover);
      for (const auto& backend : pool.backends)
        check_round_trip(backend);
      FUZZ_CHECK(std::set(pool.backends.begin(), pool.backends.end()).size() ==
                 pool.backends.size());
      break;
    case PoolKind::discover:
      FUZZ_CHECK(mode == Mode::proxy);
      FUZZ_CHECK(pool.discover.has_value() && pool.command.empty() && pool.backends.empty());
      break;
  }
  if (pool.resolver) check_round_trip(*pool.resolver);
  for (const std::string& word : pool.command)
    FUZZ_CHECK(word.find('\0') == std::string::npos);
  for (const auto& [name, value] : pool.env) {
    FUZZ_CHECK(!name.empty() && name.find('=') == std::string::npos);
    FUZZ_CHECK(name.find('\0') == std::string::npos && value.find('\0') == std::string::npos);
  }

  FUZZ_CHECK(pool.max_workers >= 1 && pool.min_workers <= pool.max_workers);
  FUZZ_CHECK(pool.concurrency >= 1);
  FUZZ_CHECK(pool.max_header_bytes >= 24);  // the smallest valid SCGI header block
  for (const auto timeout :
       {pool.queue_timeout, pool.client_timeout, pool.connect_timeout, pool.request_timeout,
        pool.stop_timeout, pool.ready_timeout, pool.discover_interval}) {
    FUZZ_CHECK(timeout.count() > 0);
    check_round_trip(timeout);
  }
  FUZZ_CHECK(pool.max_lifetime.count() >= 0);
  check_round_trip(pool.max_lifetime);
  // A zero first delay would restart a dying worker in a busy loop.
  FUZZ_CHECK(pool.restart_backoff.first.count() > 0);
  FUZZ_CHECK(pool.restart_backoff.first <= pool.restart_backoff.ceiling);
  check_round_trip_size(pool.max_header_bytes);
  check_round_trip_size(pool.max_body_bytes);
  check_round_trip_size(pool.max_rss_bytes);
}

void check_config(const ConfigResult& result, Mode mode) {
  FUZZ_CHECK(result.errors().empty());
  const scgi::Config& config = result.config();
  FUZZ_CHECK(config.path == kDisplayPath);
  FUZZ_CHECK(!config.pools.empty());
  std::set<std::string> names;
  for (const PoolConfig& pool : config.pools) {
    check_pool(pool, mode);
    FUZZ_CHECK(names.insert(pool.name).second);
  }
  if (config.metrics.listen) {
    FUZZ_CHECK(!config.metrics.listen->is_unix());
    check_round_trip(*config.metrics.listen);
  }
  FUZZ_CHECK(config.manager.shutdown_timeout.count() > 0);
  FUZZ_CHECK(scgi::summarize(config).starts_with(std::string(kDisplayPath) + ": OK, "));
}

void check_errors(const ConfigResult& result, std::string_view text) {
  const auto& errors = result.errors();
  FUZZ_CHECK(!errors.empty());
  const auto lines = static_cast<std::uint32_t>(std::count(text.begin(), text.end(), '\n') + 1);
  for (const ConfigError& error : errors) {
    FUZZ_CHECK(error.file == kDisplayPath);
    FUZZ_CHECK(error.line >= 1 && error.line <= lines);
    FUZZ_CHECK(error.column >= 1);
    FUZZ_CHECK(!error.message.empty());
    const std::string prefix = std::string(kDisplayPath) + ":" + std::to_string(error.line) + ":" +
                               std::to_string(error.column) + ": ";
    FUZZ_CHECK(error.to_string() == prefix + error.message);
  }
  FUZZ_CHECK(
      std::is_sorted(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
        return std::tie(a.line, a.column) < std::tie(b.line, b.column);
      }));
}

std::vector<std::string> messages(const ConfigResult& result) {
  std::vector<std::string> out;
  for (const ConfigError& error : result.errors())
    out.push_back(error.to_string());
  return out;
}

void check_mode(std::string_view text, Mode mode) {
  const ConfigResult result = parse(text, mode);
  if (result) {
    check_config(result, mode);
  } else {
    check_errors(result, text);
  }
  // The same file reads the same way again.
  const ConfigResult again = parse(text, mode);
  FUZZ_CHECK(static_cast<bool>(again) == static_cast<bool>(result));
  FUZZ_CHECK(messages(again) == messages(result));
  if (result) FUZZ_CHECK(scgi::summarize(again.config()) == scgi::summarize(result.config()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  check_mode(text, Mode::proxy);
  check_mode(text, Mode::manager);
  return 0;
}
