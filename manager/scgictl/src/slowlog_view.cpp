#include "slowlog_view.hpp"

#include <fmt/format.h>

namespace scgi::ctl {
namespace {

using nlohmann::json;

std::string text(const json& entry, const char* key) {
  const auto found = entry.find(key);
  return found != entry.end() && found->is_string() ? found->get<std::string>() : "";
}

double number(const json& entry, const char* key) {
  const auto found = entry.find(key);
  return found != entry.end() && found->is_number() ? found->get<double>() : 0.0;
}

void render_entry(const json& entry, std::string& out) {
  const json& worker = entry.value("worker", json());
  fmt::format_to(std::back_inserter(out), "slow request {} at {}, pool {}{}, pid {}\n",
                 entry.value("id", 0ULL), text(entry, "accepted"), text(entry, "pool"),
                 worker.is_number() ? fmt::format(" worker {}", worker.get<std::uint64_t>()) : "",
                 entry.value("pid", 0L));
  fmt::format_to(std::back_inserter(out), "  {} {}\n", text(entry, "method"), text(entry, "uri"));
  fmt::format_to(std::back_inserter(out),
                 "  found slow after {:.3f} s on the worker (queued {:.3f} s before)\n",
                 number(entry, "running_seconds"), number(entry, "queue_wait_seconds"));
  if (const json& status = entry.value("status", json()); status.is_number())
    fmt::format_to(std::back_inserter(out), "  ended: status {} after {:.3f} s on the worker\n",
                   status.get<int>(), number(entry, "total_running_seconds"));
  else
    out += "  ended: not yet\n";
  if (!text(entry, "trace_id").empty())
    fmt::format_to(std::back_inserter(out), "  trace {}\n", text(entry, "trace_id"));
  if (!text(entry, "state").empty())
    fmt::format_to(std::back_inserter(out), "  worker then: state {}, wchan {}, syscall {}\n",
                   text(entry, "state"), text(entry, "wchan"), text(entry, "syscall"));
  const json& stack = entry.value("kernel_stack", json::array());
  if (stack.is_array() && !stack.empty()) {
    out += "  kernel stack:\n";
    for (const json& frame : stack)
      if (frame.is_string())
        fmt::format_to(std::back_inserter(out), "    {}\n", frame.get<std::string>());
  } else if (!text(entry, "kernel_stack_error").empty()) {
    fmt::format_to(std::back_inserter(out), "  kernel stack: {}\n",
                   text(entry, "kernel_stack_error"));
  }
  if (!text(entry, "signal").empty())
    fmt::format_to(std::back_inserter(out), "  sent {}\n", text(entry, "signal"));
  const json& output = entry.value("output", json::array());
  if (output.is_array() && !output.empty()) {
    out += "  output that followed:\n";
    for (const json& line : output)
      if (line.is_string())
        fmt::format_to(std::back_inserter(out), "    {}\n", line.get<std::string>());
    if (entry.value("output_cut", false)) out += "    (more, not kept)\n";
  }
}

}  // namespace

std::string render_slowlog(const json& entries) {
  std::string out;
  if (!entries.is_array() || entries.empty()) return "no slow requests recorded\n";
  for (const json& entry : entries) {
    if (!entry.is_object()) continue;
    if (!out.empty()) out += "\n";
    render_entry(entry, out);
  }
  return out;
}

}  // namespace scgi::ctl
