#include "slow_log.hpp"

#include <algorithm>

#include "scgi/log.hpp"

namespace scgi::manager {
namespace {

double seconds(std::chrono::nanoseconds duration) {
  return std::chrono::duration<double>(duration).count();
}

}  // namespace

void to_json(nlohmann::json& out, const SlowEntry& entry) {
  out = nlohmann::json{
      {"id", entry.id},
      {"pool", entry.pool},
      {"worker", entry.worker ? nlohmann::json(*entry.worker) : nlohmann::json()},
      {"pid", entry.pid},
      {"method", entry.method},
      {"uri", entry.uri},
      {"trace_id", entry.trace_id},
      {"accepted", utc_timestamp(entry.accepted)},
      {"queue_wait_seconds", seconds(entry.queue_wait)},
      {"running_seconds", seconds(entry.running)},
      {"state", entry.snapshot.state},
      {"wchan", entry.snapshot.wchan},
      {"syscall", entry.snapshot.syscall},
      {"kernel_stack", entry.snapshot.kernel_stack},
      {"kernel_stack_error", entry.snapshot.kernel_stack_error},
      {"signal", entry.signal},
      {"output", entry.output},
      {"output_cut", entry.output_cut},
      {"status", entry.status ? nlohmann::json(*entry.status) : nlohmann::json()},
      {"total_running_seconds",
       entry.status ? nlohmann::json(seconds(entry.total_running)) : nlohmann::json()}};
}

void SlowLog::add(SlowEntry entry) {
  auto& entries = pools_[entry.pool];
  pool_of_[entry.id] = entry.pool;
  entries.push_back(std::move(entry));
  if (entries.size() > kEntriesPerPool) {
    pool_of_.erase(entries.front().id);
    entries.pop_front();
  }
}

SlowEntry* SlowLog::find(std::uint64_t id) {
  const auto pool = pool_of_.find(id);
  if (pool == pool_of_.end()) return nullptr;
  for (SlowEntry& entry : pools_[pool->second])  // at most kEntriesPerPool
    if (entry.id == id) return &entry;
  return nullptr;
}

void SlowLog::add_output(std::uint64_t id, const std::string& line) {
  SlowEntry* entry = find(id);
  if (entry == nullptr || entry->output_cut) return;
  if (entry->output.size() >= kOutputLines || entry->output_bytes + line.size() > kOutputBytes) {
    entry->output_cut = true;
    return;
  }
  entry->output_bytes += line.size();
  entry->output.push_back(line);
}

void SlowLog::forget(const std::string& pool) {
  const auto found = pools_.find(pool);
  if (found == pools_.end()) return;
  for (const SlowEntry& entry : found->second)
    pool_of_.erase(entry.id);
  pools_.erase(found);
}

void SlowLog::end(std::uint64_t id, int status, std::chrono::nanoseconds total_running) {
  if (SlowEntry* entry = find(id)) {
    entry->status = status;
    entry->total_running = total_running;
  }
}

std::vector<SlowEntry> SlowLog::entries(const std::string& pool) const {
  std::vector<SlowEntry> out;
  for (const auto& [name, entries] : pools_)
    if (pool.empty() || name == pool) out.insert(out.end(), entries.begin(), entries.end());
  std::stable_sort(out.begin(), out.end(),
                   [](const SlowEntry& a, const SlowEntry& b) { return a.id < b.id; });
  return out;
}

}  // namespace scgi::manager
