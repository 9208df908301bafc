#include "scgi/manager/status_table.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace scgi::manager {
namespace {

using Row = std::vector<std::string>;

// Columns padded to their widest cell, two spaces apart; the last is not
// padded, so lines carry no trailing blanks.
std::string render_table(const std::vector<Row>& rows) {
  std::vector<std::size_t> widths;
  for (const Row& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line.append(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string or_dash(const std::string& text) {
  return text.empty() ? "-" : text;
}

std::string state_of(const control::WorkerStatus& worker) {
  std::string state = or_dash(worker.state);
  if (worker.drained) state += ",drained";
  // Wanted down but not stopped yet: on its way down (scgictl stop).
  if (worker.wanted == "down" && worker.state != "stopped") state += ",wanted-down";
  return state;
}

}  // namespace

std::string format_uptime(double seconds) {
  if (!(seconds >= 0)) return "-";  // also NaN
  const auto total = static_cast<std::uint64_t>(std::floor(seconds));
  const std::uint64_t days = total / 86'400;
  const std::uint64_t hours = total / 3'600 % 24;
  const std::uint64_t minutes = total / 60 % 60;
  const std::uint64_t secs = total % 60;
  if (days > 0) return fmt::format("{}d{:02}h", days, hours);
  if (hours > 0) return fmt::format("{}h{:02}m", hours, minutes);
  if (minutes > 0) return fmt::format("{}m{:02}s", minutes, secs);
  return fmt::format("{}s", secs);
}

std::string format_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return fmt::format("{}B", bytes);
  double value = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  // Three significant digits; a value that rounds up to 1024 shows as such, fine.
  if (value < 10) return fmt::format("{:.2f}{}", value, kUnits[unit]);
  if (value < 100) return fmt::format("{:.1f}{}", value, kUnits[unit]);
  return fmt::format("{:.0f}{}", value, kUnits[unit]);
}

std::string render_status(const std::vector<control::PoolStatus>& pools) {
  if (pools.empty()) return "no pools\n";
  std::vector<Row> pool_rows{{"POOL", "LISTEN", "READY/TARGET", "QUEUE", "FAILING"}};
  std::vector<Row> worker_rows{{"WORKER", "PID", "STATE", "UPTIME", "REQUESTS", "INFLIGHT", "RSS",
                                "CPU", "RESTARTS", "LAST EXIT"}};
  for (const auto& pool : pools) {
    const auto ready = std::count_if(pool.workers.begin(), pool.workers.end(),
                                     [](const auto& worker) { return worker.state == "ready"; });
    std::string workers = fmt::format("{}/{}", ready, pool.target_workers);
    if (pool.min_workers != pool.max_workers)
      workers += fmt::format(" ({}-{})", pool.min_workers, pool.max_workers);
    pool_rows.push_back({pool.name, or_dash(pool.listen), workers,
                         std::to_string(pool.queue_length), pool.failing ? "yes" : "no"});
    for (const auto& worker : pool.workers) {
      const bool running = worker.pid > 0;
      worker_rows.push_back({fmt::format("{}:{}", pool.name, worker.index),
                             running ? std::to_string(worker.pid) : "-", state_of(worker),
                             running ? format_uptime(worker.uptime_seconds) : "-",
                             std::to_string(worker.requests), std::to_string(worker.in_flight),
                             running ? format_bytes(worker.rss_bytes) : "-",
                             fmt::format("{:.2f}", worker.cpu_seconds),
                             std::to_string(worker.restarts), or_dash(worker.last_exit)});
    }
  }
  std::string out = render_table(pool_rows);
  if (worker_rows.size() > 1) out += "\n" + render_table(worker_rows);
  return out;
}

}  // namespace scgi::manager
