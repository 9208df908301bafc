#include "slowlog_view.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "scgi/log.hpp"

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

// The manager escapes control bytes in worker output; a line with one anyway
// (an older or a modified manager) is shown quoted.
std::string printable(const std::string& line) {
  const bool control = std::any_of(line.begin(), line.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7f;
  });
  return control ? quote_for_log(line) : line;
}

void render_entry(const json& entry, std::string& out) {
  const json& worker = entry.value("worker", json());
  fmt::format_to(std::back_inserter(out), "slow request {} at {}, pool {}{}, pid {}\n",
                 entry.value("id", 0ULL), text(entry, "accepted"), text(entry, "pool"),
                 worker.is_number() ? fmt::format(" worker {}", worker.get<std::uint64_t>()) : "",
                 entry.value("pid", 0L));
  // A client wrote these: quoted and escaped, never raw on a terminal.
  fmt::format_to(std::back_inserter(out), "  {} {}\n", quote_for_log(text(entry, "method")),
                 quote_for_log(text(entry, "uri")));
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
        fmt::format_to(std::back_inserter(out), "    {}\n", printable(frame.get<std::string>()));
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
        fmt::format_to(std::back_inserter(out), "    {}\n", printable(line.get<std::string>()));
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
