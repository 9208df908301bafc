#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "output_lines.hpp"
#include "worker_logs.hpp"

using scgi::manager::OutputLines;
using scgi::manager::WorkerLogs;

namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "scgi_worker_logs_XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A pipe standing in for the manager's stderr.
struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
    read_end = fds[0];
    write_end = fds[1];
  }
  ~Pipe() {
    ::close(read_end);
    ::close(write_end);
  }
  std::string drain() const {
    std::string out;
    char buffer[4096];
    ssize_t got;
    while ((got = ::read(read_end, buffer, sizeof buffer)) > 0)
      out.append(buffer, static_cast<std::size_t>(got));
    return out;
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    REQUIRE(end != std::string::npos);  // every line ends with its newline
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// "TIME POOL[WORKER] PID| text", "+|" for a piece that continues. The text
// is parsed by hand: std::regex recurses per character and long lines would
// overflow the stack.
struct LogLine {
  std::string pool, worker, pid;
  bool continued = false;
  std::string text;  // escapes undone
};

LogLine parse_line(const std::string& line) {
  static const std::regex prefix(
      R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ([a-z0-9_-]+)\[(\d+)\] (\d+)(\+?)\| $)");
  const std::size_t bar = line.find("| ");
  REQUIRE(bar != std::string::npos);
  const std::string head = line.substr(0, bar + 2);
  std::smatch match;
  INFO(head);
  REQUIRE(std::regex_match(head, match, prefix));
  LogLine parsed{match[1], match[2], match[3], match[4].length() == 1, {}};
  const std::string escaped = line.substr(bar + 2);
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (escaped[i] != '\\') {
      parsed.text += escaped[i];
    } else if (escaped[i + 1] == '\\') {
      parsed.text += '\\';
      ++i;
    } else {
      REQUIRE(escaped[i + 1] == 'x');
      parsed.text += static_cast<char>(std::stoi(escaped.substr(i + 2, 2), nullptr, 16));
      i += 3;
    }
  }
  return parsed;
}

}  // namespace

TEST_CASE("worker lines land in the pool's file, with time, pool, worker and pid",
          "[manager][logs]") {
  TempDir dir;
  const std::string log_dir = dir.file("nested/logs");  // created on the first line
  {
    WorkerLogs logs(log_dir);
    CHECK(logs.path("app") == log_dir + "/app.log");
    logs.write("app", 3, 4242, "hello", false);
    logs.write("app", 3, 4242, "a long line's first piece", true);
    logs.write("other", 1, 7, "elsewhere", false);
  }
  const auto app = split_lines(read_file(log_dir + "/app.log"));
  REQUIRE(app.size() == 2);
  const LogLine first = parse_line(app[0]);
  CHECK(first.pool == "app");
  CHECK(first.worker == "3");
  CHECK(first.pid == "4242");
  CHECK_FALSE(first.continued);
  CHECK(first.text == "hello");
  const LogLine second = parse_line(app[1]);
  CHECK(second.continued);
  CHECK(second.text == "a long line's first piece");

  const auto other = split_lines(read_file(log_dir + "/other.log"));
  REQUIRE(other.size() == 1);
  CHECK(other[0].find(" other[1] 7| elsewhere") != std::string::npos);

  struct stat status {};
  REQUIRE(::stat((log_dir + "/app.log").c_str(), &status) == 0);
  CHECK((status.st_mode & 0777) == 0640);
}

TEST_CASE("without a log_dir, each line goes to stderr whole", "[manager][logs]") {
  Pipe stderr_pipe;
  WorkerLogs logs("", WorkerLogs::kDefaultMaxFileBytes, WorkerLogs::kDefaultKeptFiles,
                  stderr_pipe.write_end);
  CHECK(logs.path("app").empty());
  logs.write("app", 0, 11, "one", false);
  logs.write("app", 1, 12, "two", false);
  const auto lines = split_lines(stderr_pipe.drain());
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find(" app[0] 11| one") != std::string::npos);
  CHECK(lines[1].find(" app[1] 12| two") != std::string::npos);
}

TEST_CASE("rotation keeps exactly the configured number of files and never splits a line",
          "[manager][logs]") {
  TempDir dir;
  constexpr std::uint64_t kMax = 1000;
  constexpr std::size_t kKept = 3;
  constexpr int kLines = 300;
  {
    WorkerLogs logs(dir.path.string(), kMax, kKept);
    for (int i = 0; i < kLines; ++i)
      logs.write("app", 0, 1, "line " + std::to_string(i) + " " + std::string(i % 97, 'x'), false);
  }
  CHECK_FALSE(fs::exists(dir.file("app.log.4")));
  // Oldest first: the files hold one unbroken run of lines, ending with the last.
  std::vector<int> numbers;
  for (const std::string name : {"app.log.3", "app.log.2", "app.log.1", "app.log"}) {
    CAPTURE(name);
    REQUIRE(fs::exists(dir.file(name)));
    const std::string content = read_file(dir.file(name));
    CHECK(content.size() <= kMax);
    CHECK(content.back() == '\n');
    for (const std::string& line : split_lines(content)) {
      const LogLine parsed = parse_line(line);
      const std::string& text = parsed.text;
      CHECK_FALSE(parsed.continued);
      REQUIRE(text.rfind("line ", 0) == 0);
      const int number = std::stoi(text.substr(5));
      CHECK(text == "line " + std::to_string(number) + " " + std::string(number % 97, 'x'));
      numbers.push_back(number);
    }
  }
  REQUIRE_FALSE(numbers.empty());
  CHECK(numbers.back() == kLines - 1);
  for (std::size_t i = 1; i < numbers.size(); ++i)
    CHECK(numbers[i] == numbers[i - 1] + 1);
  // Four files of at most 1000 bytes, each full up to less than one more line.
  CHECK(numbers.size() > 4 * kMax / 250);
}

TEST_CASE("a line longer than the file limit gets a file to itself", "[manager][logs]") {
  TempDir dir;
  {
    WorkerLogs logs(dir.path.string(), 100, 2);
    logs.write("app", 0, 1, "short", false);
    logs.write("app", 0, 1, std::string(300, 'L'), false);
    logs.write("app", 0, 1, "after", false);
  }
  CHECK(split_lines(read_file(dir.file("app.log.2"))).size() == 1);
  const auto long_file = split_lines(read_file(dir.file("app.log.1")));
  REQUIRE(long_file.size() == 1);
  CHECK(long_file[0].find(std::string(300, 'L')) != std::string::npos);
  const auto current = split_lines(read_file(dir.file("app.log")));
  REQUIRE(current.size() == 1);
  CHECK(current[0].find("| after") != std::string::npos);
}

TEST_CASE("with no kept files, a full file starts over", "[manager][logs]") {
  TempDir dir;
  {
    WorkerLogs logs(dir.path.string(), 200, 0);
    for (int i = 0; i < 10; ++i)
      logs.write("app", 0, 1, "line " + std::to_string(i) + std::string(40, '.'), false);
  }
  CHECK_FALSE(fs::exists(dir.file("app.log.1")));
  const std::string content = read_file(dir.file("app.log"));
  CHECK(content.size() <= 200);
  const auto lines = split_lines(content);
  REQUIRE_FALSE(lines.empty());
  CHECK(parse_line(lines.back()).text == "line 9" + std::string(40, '.'));
}

TEST_CASE("reopen after logrotate moved the file writes to a new file by the same name",
          "[manager][logs]") {
  TempDir dir;
  WorkerLogs logs(dir.path.string());
  logs.write("app", 0, 1, "before the move", false);
  fs::rename(dir.file("app.log"), dir.file("app.log.moved"));
  logs.write("app", 0, 1, "after the move, before reopen", false);  // still the open file
  logs.reopen();
  logs.write("app", 0, 1, "after reopen", false);

  const auto moved = split_lines(read_file(dir.file("app.log.moved")));
  REQUIRE(moved.size() == 2);
  CHECK(moved[1].find("| after the move, before reopen") != std::string::npos);
  const auto fresh = split_lines(read_file(dir.file("app.log")));
  REQUIRE(fresh.size() == 1);
  CHECK(fresh[0].find("| after reopen") != std::string::npos);
}

TEST_CASE("a file that cannot be opened sends lines to stderr until a reopen works",
          "[manager][logs]") {
  TempDir dir;
  Pipe stderr_pipe;
  // A regular file where the log directory should be: nothing can be created below it.
  std::ofstream(dir.file("blocker")) << "in the way\n";
  const std::string log_dir = dir.file("blocker/logs");
  WorkerLogs logs(log_dir, WorkerLogs::kDefaultMaxFileBytes, WorkerLogs::kDefaultKeptFiles,
                  stderr_pipe.write_end);
  logs.write("app", 0, 1, "first", false);
  logs.write("app", 0, 1, "second", false);
  fs::remove(dir.file("blocker"));
  logs.write("app", 0, 1, "third: not tried again before reopen", false);
  auto fallback = split_lines(stderr_pipe.drain());
  REQUIRE(fallback.size() == 3);
  CHECK(fallback[0].find("| first") != std::string::npos);
  CHECK(fallback[2].find("| third") != std::string::npos);

  logs.reopen();
  logs.write("app", 0, 1, "fourth", false);
  CHECK(stderr_pipe.drain().empty());
  const auto file = split_lines(read_file(log_dir + "/app.log"));
  REQUIRE(file.size() == 1);
  CHECK(file[0].find("| fourth") != std::string::npos);
}

TEST_CASE("a megabyte without a newline and every byte value come out as valid whole lines",
          "[manager][logs]") {
  TempDir dir;
  std::string output;
  for (int i = 0; i < 1 << 20; ++i)
    output.push_back(static_cast<char>('a' + i % 26));
  for (int round = 0; round < 2; ++round)
    for (int byte = 0; byte < 256; ++byte)
      output.push_back(static_cast<char>(byte));
  {
    WorkerLogs logs(dir.path.string(), 64 * 1024 * 1024);
    OutputLines lines(
        [&](std::string_view text, bool continued) { logs.write("app", 2, 77, text, continued); });
    for (std::size_t at = 0; at < output.size(); at += 10007)
      lines.feed(std::string_view(output).substr(at, 10007));
    lines.finish();
  }
  const auto lines = split_lines(read_file(dir.file("app.log")));
  // 1 MiB in 16 KiB pieces, then the junk cut at its two newlines (byte 10).
  CHECK(lines.size() == 64 + 3);
  std::string rebuilt;
  for (const std::string& line : lines) {
    // Nothing in a line can break it or a terminal: no control byte but tab.
    const bool clean = std::all_of(line.begin(), line.end(), [](char c) {
      const auto byte = static_cast<unsigned char>(c);
      return (byte >= 0x20 && byte != 0x7f) || c == '\t';
    });
    CHECK(clean);
    const LogLine parsed = parse_line(line);
    rebuilt += parsed.text;
    if (!parsed.continued) rebuilt += '\n';
  }
  CHECK(rebuilt == output + "\n");
}

TEST_CASE("recent lines, of a whole pool or of one worker, oldest first", "[manager][logs]") {
  Pipe stderr_pipe;
  WorkerLogs logs("", WorkerLogs::kDefaultMaxFileBytes, WorkerLogs::kDefaultKeptFiles,
                  stderr_pipe.write_end);
  for (int i = 0; i < 1005; ++i) {
    logs.write("app", static_cast<std::uint32_t>(i % 2), 100 + i % 2, std::to_string(i), false);
    if (i % 64 == 0) stderr_pipe.drain();  // keep the pipe from filling up
  }
  logs.write("other", 0, 5, "not app", false);

  const auto last = logs.recent("app", std::nullopt, 3);
  REQUIRE(last.size() == 3);
  CHECK(last[0].ends_with(" app[0] 100| 1002"));
  CHECK(last[1].ends_with(" app[1] 101| 1003"));
  CHECK(last[2].ends_with(" app[0] 100| 1004"));

  const auto odd = logs.recent("app", 1, 2);
  REQUIRE(odd.size() == 2);
  CHECK(odd[0].ends_with("| 1001"));
  CHECK(odd[1].ends_with("| 1003"));

  const auto all = logs.recent("app", std::nullopt, 5000);
  REQUIRE(all.size() == WorkerLogs::kRecentLines);
  CHECK(all.front().ends_with("| 5"));
  CHECK(logs.recent("app", 1, 5000).size() == WorkerLogs::kRecentLines / 2);
  CHECK(logs.recent("app", 7, 10).empty());
  CHECK(logs.recent("nosuchpool", std::nullopt, 10).empty());
  CHECK(logs.recent("other", std::nullopt, 10).size() == 1);
  for (const auto& line : all)
    CHECK(line.find('\n') == std::string::npos);
}

TEST_CASE("subscribers get each new line of their pool or worker until they unsubscribe",
          "[manager][logs]") {
  Pipe stderr_pipe;
  WorkerLogs logs("", WorkerLogs::kDefaultMaxFileBytes, WorkerLogs::kDefaultKeptFiles,
                  stderr_pipe.write_end);
  logs.write("app", 0, 1, "before anyone listened", false);
  std::vector<std::string> pool_lines, worker_lines, other_lines, once_lines;
  const auto pool_id =
      logs.subscribe("app", std::nullopt, [&](const std::string& l) { pool_lines.push_back(l); });
  const auto worker_id =
      logs.subscribe("app", 1, [&](const std::string& l) { worker_lines.push_back(l); });
  logs.subscribe("other", std::nullopt, [&](const std::string& l) { other_lines.push_back(l); });
  std::uint64_t once_id = 0;
  once_id = logs.subscribe("app", std::nullopt, [&](const std::string& l) {
    once_lines.push_back(l);
    logs.unsubscribe(once_id);  // from inside its own call
  });

  logs.write("app", 0, 1, "zero", false);
  logs.write("app", 1, 2, "one", false);
  CHECK(pool_lines.size() == 2);
  REQUIRE(worker_lines.size() == 1);
  CHECK(worker_lines[0].ends_with(" app[1] 2| one"));
  CHECK(other_lines.empty());
  REQUIRE(once_lines.size() == 1);
  CHECK(once_lines[0].ends_with("| zero"));
  CHECK(pool_lines[1] == logs.recent("app", std::nullopt, 1).at(0));

  logs.unsubscribe(pool_id);
  logs.unsubscribe(worker_id);
  logs.write("app", 1, 2, "nobody hears this", false);
  logs.write("other", 0, 3, "but this", false);
  CHECK(pool_lines.size() == 2);
  CHECK(worker_lines.size() == 1);
  CHECK(once_lines.size() == 1);
  CHECK(other_lines.size() == 1);
}
