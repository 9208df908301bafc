#include "status_table.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace scgi::ctl {
namespace {

// A cell and the SGR code it is painted with ("" = plain).
struct Cell {
  std::string text;
  std::string_view color{};
};
using Row = std::vector<Cell>;

constexpr std::string_view kBold = "1";

// Columns padded to their widest cell, two spaces apart; the last is not
// padded, so lines carry no trailing blanks. Widths count the text only, so
// colors never shift a column. The first row is the header.
std::string render_table(const std::vector<Row>& rows, bool color) {
  std::vector<std::size_t> widths;
  for (const Row& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].text.size());
  }
  std::string out;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const Row& row = rows[r];
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      const std::string_view code = !color ? "" : r == 0 ? kBold : row[i].color;
      line += paint(row[i].text, code);
      if (i + 1 < row.size()) line.append(widths[i] - row[i].text.size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string or_dash(const std::string& text) {
  return text.empty() ? "-" : text;
}

std::string worker_state(const control::WorkerStatus& worker) {
  std::string state = or_dash(worker.state);
  if (worker.drained) state += ",drained";
  // Wanted down but not stopped yet: on its way down (scgictl stop).
  if (worker.wanted == "down" && worker.state != "stopped") state += ",wanted-down";
  return state;
}

}  // namespace

std::string pool_state(const control::PoolStatus& pool) {
  if (!pool.state.empty()) return pool.state;
  if (pool.failing) return "failing";
  if (pool.target_workers == 0) return "stopped";
  const auto ready = std::count_if(pool.workers.begin(), pool.workers.end(),
                                   [](const auto& worker) { return worker.state == "ready"; });
  return static_cast<std::uint32_t>(ready) >= pool.target_workers ? "running" : "degraded";
}

std::string_view state_color(std::string_view state) {
  if (state == "ready" || state == "running") return "32";
  if (state == "starting" || state == "draining" || state == "stopping" || state == "degraded")
    return "33";
  if (state == "backoff" || state == "failing") return "31";
  if (state == "stopped") return "2";
  return "";
}

std::string paint(std::string_view text, std::string_view code) {
  if (code.empty()) return std::string(text);
  return fmt::format("\x1b[{}m{}\x1b[0m", code, text);
}

std::string clip_line(std::string_view line, std::size_t columns) {
  std::string out;
  std::size_t visible = 0;
  bool painted = false;  // an SGR code is in force
  for (std::size_t i = 0; i < line.size();) {
    if (line[i] == '\x1b' && i + 1 < line.size() && line[i + 1] == '[') {
      const auto end = line.find('m', i);
      if (end == std::string_view::npos) break;
      const std::string_view code = line.substr(i, end + 1 - i);
      painted = code != "\x1b[0m";
      out += code;
      i = end + 1;
      continue;
    }
    if (visible == columns) {
      if (painted) out += "\x1b[0m";
      return out;
    }
    // A UTF-8 character is one column: its continuation bytes come along.
    out += line[i++];
    while (i < line.size() && (static_cast<unsigned char>(line[i]) & 0xC0) == 0x80)
      out += line[i++];
    ++visible;
  }
  return out;
}

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

std::string format_rate(double per_second) {
  if (!(per_second > 0.05)) return "0";  // also NaN
  if (per_second < 100) return fmt::format("{:.1f}", per_second);
  return fmt::format("{:.0f}", per_second);
}

std::string format_latency(double seconds) {
  if (!(seconds > 0)) return "-";  // also NaN
  const double ms = seconds * 1000;
  if (ms < 10) return fmt::format("{:.2f}ms", ms);
  if (ms < 100) return fmt::format("{:.1f}ms", ms);
  if (ms < 1000) return fmt::format("{:.0f}ms", ms);
  return fmt::format("{:.2f}s", seconds);
}

std::string render_status(const std::vector<control::PoolStatus>& pools, StatusLook look) {
  if (pools.empty()) return "no pools\n";
  Row pool_header{{"POOL"}, {"STATE"}, {"READY/TOTAL"}, {"INFLIGHT"}, {"QUEUE"}, {"REQ/S"}};
  if (look.latency) pool_header.insert(pool_header.end(), {{"P50"}, {"P99"}, {"REQUESTS"}});
  if (!look.latency) pool_header.push_back({"LISTEN"});  // top: no room to spare
  std::vector<Row> pool_rows{pool_header};
  std::vector<Row> worker_rows{{{"WORKER"},
                                {"PID"},
                                {"STATE"},
                                {"UPTIME"},
                                {"REQUESTS"},
                                {"INFLIGHT"},
                                {"RSS"},
                                {"CPU"},
                                {"RESTARTS"},
                                {"LAST EXIT"}}};
  for (const auto& pool : pools) {
    const auto ready = std::count_if(pool.workers.begin(), pool.workers.end(),
                                     [](const auto& worker) { return worker.state == "ready"; });
    std::string workers = fmt::format("{}/{}", ready, pool.target_workers);
    if (pool.min_workers != pool.max_workers)
      workers += fmt::format(" ({}-{})", pool.min_workers, pool.max_workers);
    const std::string state = pool_state(pool);
    Row row{{pool.name},
            {state, state_color(state)},
            {workers},
            {std::to_string(pool.in_flight)},
            {std::to_string(pool.queue_length)},
            {format_rate(pool.request_rate)}};
    if (look.latency)
      row.insert(row.end(), {{format_latency(pool.latency_p50_seconds)},
                             {format_latency(pool.latency_p99_seconds)},
                             {std::to_string(pool.requests)}});
    if (!look.latency) row.push_back({or_dash(pool.listen)});
    pool_rows.push_back(std::move(row));
    for (const auto& worker : pool.workers) {
      const bool running = worker.pid > 0;
      worker_rows.push_back({{fmt::format("{}:{}", pool.name, worker.index)},
                             {running ? std::to_string(worker.pid) : "-"},
                             {worker_state(worker), state_color(worker.state)},
                             {running ? format_uptime(worker.uptime_seconds) : "-"},
                             {std::to_string(worker.requests)},
                             {std::to_string(worker.in_flight)},
                             {running ? format_bytes(worker.rss_bytes) : "-"},
                             {fmt::format("{:.2f}", worker.cpu_seconds)},
                             {std::to_string(worker.restarts)},
                             {or_dash(worker.last_exit)}});
    }
  }
  std::string out = render_table(pool_rows, look.color);
  if (worker_rows.size() > 1) out += "\n" + render_table(worker_rows, look.color);
  return out;
}

}  // namespace scgi::ctl
