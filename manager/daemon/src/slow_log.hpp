// The slow log (`scgictl slowlog`): the last requests that ran past their
// pool's slow_request_threshold, each with what its worker was doing then
// (process_snapshot.hpp), the signal it was sent, the output it wrote after
// it, and how the request ended. Kept in memory, a bounded number per pool;
// used on the control thread only.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "process_snapshot.hpp"

namespace scgi::manager {

struct SlowEntry {
  std::uint64_t id = 0;  // the balancer's id of the request
  std::string pool;
  std::optional<std::uint32_t> worker;  // none when the backend was not one of the pool's workers
  long pid = 0;
  std::string method;
  std::string uri;
  std::string trace_id;
  std::chrono::system_clock::time_point accepted;
  std::chrono::nanoseconds queue_wait{0};
  std::chrono::nanoseconds running{0};  // on the worker when it was found slow
  ProcessSnapshot snapshot;
  std::string signal;               // sent to the worker; "" none
  std::vector<std::string> output;  // the worker's lines that followed, as logged
  bool output_cut = false;          // more came than an entry keeps
  std::size_t output_bytes = 0;     // of `output`
  // How it ended: set once the worker is done with it.
  std::optional<int> status;
  std::chrono::nanoseconds total_running{0};
};

void to_json(nlohmann::json& out, const SlowEntry& entry);

class SlowLog {
 public:
  static constexpr std::size_t kEntriesPerPool = 50;
  static constexpr std::size_t kOutputLines = 200;
  static constexpr std::size_t kOutputBytes = 64 * 1024;

  void add(SlowEntry entry);
  // Output of the worker after the request was found slow; past the bounds
  // the entry notes that it was cut.
  void add_output(std::uint64_t id, const std::string& line);
  void end(std::uint64_t id, int status, std::chrono::nanoseconds total_running);
  // The pool's entries ("" = every pool's), oldest first.
  std::vector<SlowEntry> entries(const std::string& pool) const;
  // A pool that is gone: its entries go too.
  void forget(const std::string& pool);

 private:
  SlowEntry* find(std::uint64_t id);

  std::map<std::string, std::deque<SlowEntry>> pools_;
  std::map<std::uint64_t, std::string> pool_of_;  // entry id -> its pool
};

}  // namespace scgi::manager
