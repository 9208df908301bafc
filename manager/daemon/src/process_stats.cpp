#include "process_stats.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace scgi::manager {
namespace {

// The fields of /proc/PID/stat this file needs (proc(5) numbering).
struct StatFields {
  pid_t pgrp = 0;               // 5
  std::uint64_t utime = 0;      // 14, clock ticks
  std::uint64_t stime = 0;      // 15
  std::uint64_t cutime = 0;     // 16, reaped children
  std::uint64_t cstime = 0;     // 17
  std::uint64_t rss_pages = 0;  // 24, the same count as statm's "resident"
};

// Reads the whole of a small /proc file: one read() gives a consistent
// snapshot of it, so the loop only matters for a truncated first read.
Result<std::string> read_proc_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Result<std::string>::fail(fmt::format("{}: {}", path, std::strerror(errno)));
  std::string content;
  char buffer[1024];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      return Result<std::string>::fail(fmt::format("{}: {}", path, std::strerror(error)));
    }
    if (got == 0) break;
    content.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return Result<std::string>::ok(std::move(content));
}

template <class T>
bool parse_number(std::string_view text, T& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

// "PID (COMM) STATE PPID PGRP …": COMM may hold spaces and parentheses, so
// the fields are counted from the last ')'.
Result<StatFields> parse_stat(std::string_view stat) {
  const std::size_t close = stat.rfind(')');
  if (close == std::string_view::npos)
    return Result<StatFields>::fail("no ')' after the command name");
  std::string_view rest = stat.substr(close + 1);
  StatFields fields;
  int number = 2;  // the field just before `rest`: 2 is (COMM)
  bool ok = true;
  while (number < 24) {
    const std::size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const std::size_t end = std::min(rest.find_first_of(" \n"), rest.size());
    const std::string_view field = rest.substr(0, end);
    rest.remove_prefix(end);
    switch (++number) {
      case 5:
        ok = ok && parse_number(field, fields.pgrp);
        break;
      case 14:
        ok = ok && parse_number(field, fields.utime);
        break;
      case 15:
        ok = ok && parse_number(field, fields.stime);
        break;
      case 16:
        ok = ok && parse_number(field, fields.cutime);
        break;
      case 17:
        ok = ok && parse_number(field, fields.cstime);
        break;
      case 24:
        ok = ok && parse_number(field, fields.rss_pages);
        break;
      default:
        break;
    }
  }
  if (!ok || number < 24) return Result<StatFields>::fail("unexpected format");
  return Result<StatFields>::ok(fields);
}

Result<StatFields> read_stat(pid_t pid) {
  const std::string path = fmt::format("/proc/{}/stat", pid);
  auto content = read_proc_file(path);
  if (!content) return Result<StatFields>::fail(content.error());
  auto fields = parse_stat(content.value());
  if (!fields) return Result<StatFields>::fail(fmt::format("{}: {}", path, fields.error()));
  return fields;
}

double ticks_to_seconds(std::uint64_t ticks) {
  static const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(ticks) /
         static_cast<double>(ticks_per_second > 0 ? ticks_per_second : 100);
}

std::uint64_t pages_to_bytes(std::uint64_t pages) {
  static const long page_size = ::sysconf(_SC_PAGESIZE);
  return pages * static_cast<std::uint64_t>(page_size > 0 ? page_size : 4096);
}

}  // namespace

Result<ProcessUsage> read_process_usage(pid_t pid) {
  const auto fields = read_stat(pid);
  if (!fields) return Result<ProcessUsage>::fail(fields.error());
  return Result<ProcessUsage>::ok({pages_to_bytes(fields.value().rss_pages),
                                   ticks_to_seconds(fields.value().utime + fields.value().stime)});
}

Result<GroupUsage> read_all_group_usage() {
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr)
    return Result<GroupUsage>::fail(fmt::format("/proc: {}", std::strerror(errno)));
  std::unordered_map<pid_t, std::pair<std::uint64_t, std::uint64_t>> pages_and_ticks;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    if (!parse_number(std::string_view(entry->d_name), pid) || pid <= 0) continue;
    // A process that ends between readdir() and the read is simply not counted.
    const auto fields = read_stat(pid);
    if (!fields) continue;
    const StatFields& f = fields.value();
    auto& [pages, ticks] = pages_and_ticks[f.pgrp];
    pages += f.rss_pages;
    ticks += f.utime + f.stime + f.cutime + f.cstime;
  }
  ::closedir(proc);
  GroupUsage groups;
  groups.reserve(pages_and_ticks.size());
  for (const auto& [pgid, totals] : pages_and_ticks)
    groups[pgid] = {pages_to_bytes(totals.first), ticks_to_seconds(totals.second)};
  return Result<GroupUsage>::ok(std::move(groups));
}

Result<ProcessUsage> read_group_usage(pid_t pgid) {
  auto groups = read_all_group_usage();
  if (!groups) return Result<ProcessUsage>::fail(groups.error());
  const auto group = groups.value().find(pgid);
  if (group == groups.value().end())
    return Result<ProcessUsage>::fail(fmt::format("no process in process group {}", pgid));
  return Result<ProcessUsage>::ok(group->second);
}

}  // namespace scgi::manager
