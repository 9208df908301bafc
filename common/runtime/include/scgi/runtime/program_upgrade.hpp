// The hitless self-upgrade's process side (docs/operations.md, "Upgrading"):
// a running daemon replaces its own image with the program file it was
// started from (execve in place: the PID, the children and every descriptor
// it keeps stay), and hands the next image its state: a JSON document in a
// memory file, and descriptors (listening sockets, worker pipes) by number.
//
// The old image first runs the new program with --upgrade-check on the same
// state: a program that cannot start, read the configuration or read the
// state is never exec'd. Should the new image still fail to read the state
// after the exec, it runs the previous program again (kept open for that),
// which takes the state back: either way nothing is lost.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "scgi/result.hpp"

namespace scgi {

// The handed state's envelope: which program handed it, in which format.
inline constexpr int kHandoverFormat = 1;

// At start: the program file and arguments an upgrade runs again. The path
// is resolved now, so that a package upgrade that replaced the file at that
// path is what the next upgrade runs.
void remember_program(int argc, char** argv);
const std::string& program_path();

// --- In the new image. ---

// What the previous image handed over. Move-only; closes what it holds.
class HandedState {
 public:
  HandedState(nlohmann::json state, int return_fd, int fallback_fd,
              std::optional<std::string> failed)
      : state_(std::move(state)),
        return_fd_(return_fd),
        fallback_fd_(fallback_fd),
        failed_(std::move(failed)) {}
  HandedState(HandedState&& other) noexcept;
  HandedState& operator=(HandedState&&) = delete;
  ~HandedState();

  // Why this program cannot read it (unreadable, another format or program),
  // or nullopt; daemon_state() is valid only without a problem.
  std::optional<std::string> problem(const std::string& program) const;
  const nlohmann::json& daemon_state() const { return state_.at("state"); }
  std::string previous_version() const { return state_.value("version", "?"); }
  // The previous image's upgrade counts ({"done": N, "failed": M}).
  nlohmann::json upgrades() const { return state_.value("upgrades", nlohmann::json::object()); }
  // Set when this image is the previous program, run again because the new one
  // failed: why it failed.
  const std::optional<std::string>& failed_upgrade() const { return failed_; }
  // The new image cannot take the state over (and has changed nothing yet):
  // runs the previous program again on the same state. Returns only if that
  // fails too (then the daemon can only exit: its workers go with it).
  std::string return_to_previous(const std::string& why);

 private:
  nlohmann::json state_;
  int return_fd_;    // the previous image's own copy of the state
  int fallback_fd_;  // the previous program file, open
  std::optional<std::string> failed_;
  std::string read_error_;
  friend std::optional<HandedState> take_handed_state();
};

// The state handed over, if this start is an upgrade (nullopt otherwise);
// counts the upgrade (done, or failed when this is the previous program back).
std::optional<HandedState> take_handed_state();

// A descriptor the handed state names: true when it is open. It stays
// inheritable until finish_upgrade() (the previous program may have to take
// it back); workers never get it, as they close all but their own.
bool adopt_descriptor(int fd);

// Once the daemon serves: makes every descriptor close-on-exec, logs that an
// upgrade took place (from which version) or that this is the previous
// program, back after a failed one (counted in upgrade_counts already, as the
// state was taken), and tells systemd the (same) main PID. Before it, a daemon that cannot take
// over calls HandedState::return_to_previous().
void finish_upgrade(const std::optional<HandedState>& handed);

// Upgrades of this daemon since it started (its first image), for
// scgi_upgrades_total: carried from image to image.
struct UpgradeCounts {
  std::uint64_t done = 0;    // a new program took over
  std::uint64_t failed = 0;  // refused, or undone by the previous program
};
UpgradeCounts upgrade_counts();

// A start that failed (`why` is logged): the new image of an upgrade gives
// the state back to the previous program, which serves on (and this returns
// only if that failed too); 1, the exit code, either way.
int fail_start(std::optional<HandedState>& handed, const std::string& why);

// After an upgrade, a part that the previous image had running but this one
// cannot start yet (the /metrics port, taken meanwhile by another process) is
// tried again every few seconds, rather than ending the daemon and its workers.
void keep_trying(asio::io_context& control, std::function<bool()> attempt);

// --- In the old image. ---

struct Handover {
  nlohmann::json daemon_state;
  std::vector<int> descriptors;  // kept open across the exec
};

// Runs the program file with --upgrade-check on `state`: an error with what
// it said when it exits, fails or hangs past `limit` instead of approving.
asio::awaitable<Result<bool>> check_new_program(asio::any_io_executor executor,
                                                const std::string& program,
                                                const nlohmann::json& daemon_state,
                                                std::chrono::milliseconds limit);

// Replaces this image with the program file. Call on the main thread (the one
// that forked the workers: their parent-death signal follows it). Returns only
// when the exec failed, with why, everything restored.
std::string replace_program(const std::string& program, const Handover& handover);

// An upgrade from start to end, the daemon's parts given as steps: check the
// new program on the state as it is now; pause (stop accepting, let requests
// in flight finish); take the state again and exec. Returns only when the
// upgrade failed (why); the daemon was resumed then, or never paused.
struct UpgradeSteps {
  std::string program;  // "scgi-proxy"
  std::function<nlohmann::json(std::vector<int>& descriptors)> state;
  std::function<asio::awaitable<void>()> pause;
  std::function<void()> resume;
  // Why the upgrade cannot go on now (a stop began, say), or nullopt; asked
  // before the check and again once paused, right before the exec.
  std::function<std::optional<std::string>()> blocked;
};
asio::awaitable<std::string> upgrade_program(asio::any_io_executor executor,
                                             const UpgradeSteps& steps);

// The daemon's signals stay blocked across the exec, so that one arriving in
// between waits instead of killing; the new image calls this once its handlers
// are in place (handle_daemon_signals does).
void unblock_daemon_signals();

// In --upgrade-check: prints the line check_new_program looks for.
void approve_upgrade();

}  // namespace scgi
