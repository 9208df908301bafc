// Debian's nginx, Apache 2.4 and lighttpd started for a test with the very
// configurations users copy from deploy/examples/, and curl as the client.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "../support/harness.hpp"

namespace scgi::test {

enum class FrontEndKind { nginx, apache, lighttpd };

std::string to_string(FrontEndKind kind);

// Where a front end's configuration may differ from the example file: only
// these are substituted, everything else is the file as shipped.
struct FrontEndSetup {
  std::uint16_t http_port = 0;  // the front end listens on 127.0.0.1:http_port
  Address pool;                 // instead of the example's 127.0.0.1:4000
  // Exact edits applied to the example after the address ones ({from, to});
  // each `from` must occur, so a test notices when the example changes.
  std::vector<std::pair<std::string, std::string>> edits{};
};

// One front end running in the foreground, stopped by its PID when destroyed.
class FrontEnd {
 public:
  FrontEnd(const TempDir& dir, FrontEndKind kind, const FrontEndSetup& setup);
  FrontEndKind kind() const { return kind_; }
  std::string url(const std::string& path_and_query) const;
  Process& process() { return process_; }
  // Its own error log, for assertion messages.
  std::string error_log() const;

 private:
  FrontEndKind kind_;
  std::uint16_t http_port_;
  std::string error_log_path_;
  Process process_;
};

// `text` with every occurrence of `from` replaced; throws if there is none.
std::string replace_all(std::string text, const std::string& from, const std::string& to);

struct HttpReply {
  int status = 0;                                   // 0: curl got no answer
  std::multimap<std::string, std::string> headers;  // names lower-case, last response only
  std::string body;
  std::string header(const std::string& lower_case_name) const;
};

// curl running in the background, for requests that must overlap.
class CurlRequest {
 public:
  CurlRequest(const TempDir& dir, std::vector<std::string> options, const std::string& url);
  // Waits (bounded) and reads what curl saved.
  HttpReply finish();

 private:
  std::string stem_;
  Process process_;
};

// One request with curl, waited for.
HttpReply curl(const TempDir& dir, std::vector<std::string> options, const std::string& url);

}  // namespace scgi::test
