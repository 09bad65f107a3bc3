// ScriptHost: runs the segment scripts (Lua, on LuaJIT) over one user's
// event history and returns the segments the user belongs to.
//
// Start here. A script (scripts/<name>.lua) declares its name, version, the
// segments it may emit and `evaluate(user)`; what a script sees (contract,
// helpers, filters, sandbox and limits) is documented once, in
// docs/sdk/README.md, and implemented by lua/script_runtime.lua. The host
//   - loads every `*.lua` file of `scripts_dir` into one sandboxed LuaJIT
//     state (no io, os, ffi, require, load, debug, ...), with a memory cap
//     for the state and a CPU budget for every call into a script;
//   - evaluates all non-quarantined scripts for a user and returns the union
//     of their segments plus per-script details (segments, runtime, error);
//   - counts failures (error, budget, memory, undeclared segment) and
//     quarantines a script after `quarantine_after_failures` consecutive
//     failures for `quarantine_ms`; the other scripts keep running for that
//     user;
//   - reports with every evaluation a due time (next_change_ms): the earliest
//     moment the user's membership could change with no new events, from the
//     time windows the scripts' helper calls used;
//   - reloads the directory on Reload(), RequestReload() or when it notices a
//     change; a reload builds a new state and swaps it in only when every
//     script loaded, so a bad file keeps the previous set serving. A reload
//     lifts all quarantines.
//
// The due time. A helper filter with a time window answers differently only
// when an event crosses one of its moving edges:
//   - within_* (time >= now - window): the oldest matching event leaves at
//     its time + window; events never enter from below;
//   - older_than_days (time <= now - bound): the oldest event newer than
//     now - bound that matches the rest of the filter enters at its time +
//     bound;
//   - since_ms / until_ms are absolute and never move.
// A script's due time is the minimum of these over its helper calls (a
// filter answered from the per-user memo contributes as well), or now +
// opaque_time_recheck_ms when it read times the host cannot follow
// (user:days_since, now_ms, first, last, events, or a filter with `where`).
// An evaluation's due time is the minimum over the scripts that ran
// successfully. It may be early (a wasted re-evaluation), never late, except
// for the opaque recheck, which is a policy, not a bound.
//
// Thread-safety: a ScriptHost is single-threaded (it owns one lua_State).
// Create one per worker thread. Only RequestReload() may be called from any
// thread (e.g. a SIGHUP handler thread); the reload itself then happens on
// the worker, between two users.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/event.h"
#include "common/status.h"

namespace seg::segmenter {

struct ScriptHostOptions {
  // Directory with the segment scripts (`*.lua`, not recursive).
  std::string scripts_dir;
  // CPU budget of one call into a script (evaluate() of one user, or the
  // top-level chunk at load), in milliseconds of the worker thread's time.
  // Checked inside every loop and function body of the script (also in
  // JIT-compiled code), so a runaway call stops within about a millisecond
  // of the budget; time spent inside one C library call is not interrupted.
  int64_t cpu_budget_ms = 50;
  // Cap on the memory of the whole Lua state (runtime, all scripts, one
  // user's data), in MiB. An allocation above it fails the current call.
  int64_t memory_limit_mb = 128;
  // A script failing this many calls in a row is skipped (quarantined) for
  // quarantine_ms. 0 disables quarantine.
  int quarantine_after_failures = 5;
  // How long a quarantine lasts, in milliseconds of clock->MonotonicUs();
  // 0: until the next reload. When it has passed, the next evaluation runs
  // the script again on probation: one more failure quarantines it again at
  // once (a script that failed quarantine_after_failures calls in a row is
  // most likely still broken; a fresh series of tries would cost that many
  // failed users per period), one success ends the probation.
  int64_t quarantine_ms = 600'000;
  // Due time of a script that read times the host cannot follow (see "The
  // due time" above): now + this, in milliseconds. > 0.
  int64_t opaque_time_recheck_ms = 86'400'000;
  // "now" for time windows (within_days, ...) and the reload-check timer.
  // nullptr means Clock::Real(). Not owned; must outlive the host.
  Clock* clock = nullptr;
  // How often EvaluateUser() looks at the directory for changed files, in
  // milliseconds of clock->MonotonicUs(). 0: only explicit reloads.
  int64_t reload_check_interval_ms = 1000;
  // Inserts the CPU-budget checks into scripts. Turning it off makes runaway
  // scripts unstoppable; it exists for the benchmark baseline only.
  bool instrument_budget = true;

  // <prefix>.{dir, cpu_budget_ms, memory_limit_mb, quarantine_after_failures,
  // quarantine_ms, opaque_time_recheck_ms, reload_check_interval_ms}; absent
  // keys keep the fields' values. Checks the ranges.
  Status LoadFrom(Config& config, std::string_view prefix = "scripts");
};

// Why a script's call failed.
enum class ScriptErrorKind : int {
  kNone = 0,
  kError = 1,              // a Lua error raised by the script or a helper
  kCpuBudget = 2,          // cpu_budget_ms exceeded
  kMemoryLimit = 3,        // memory_limit_mb exceeded
  kUndeclaredSegment = 4,  // returned a segment missing from `segments`
  kBadResult = 5,          // returned something that is not a segment list
};
std::string_view ScriptErrorKindName(ScriptErrorKind kind);

struct ScriptResult {
  std::string name;
  std::vector<std::string> segments;  // sorted, deduped; empty on error
  int64_t runtime_us = 0;
  ScriptErrorKind error_kind = ScriptErrorKind::kNone;
  std::string error;  // "loves_cats.lua:12: attempt to ..." when failed
  // With EvaluateOptions::explain: positions (in the caller's span) of the
  // events that the script's helper calls matched, in call order, deduped.
  std::vector<int32_t> matched_events;
  // Epoch ms: the earliest moment this script's answer could change with no
  // new events (see "The due time" above); max() = never by its windows,
  // and max() when the call failed (its answer is not known).
  int64_t next_change_ms = std::numeric_limits<int64_t>::max();
};

struct EvaluationResult {
  std::string user_id;
  std::vector<std::string> segments;     // union of all scripts, sorted, deduped
  std::vector<ScriptResult> scripts;     // the scripts that ran, in load order
  std::vector<std::string> failed;       // names of scripts that failed now
  std::vector<std::string> quarantined;  // names skipped as quarantined
  std::string script_set_version;        // see script_set_version()
  int64_t now_ms = 0;                    // the "now" the scripts saw
  // Epoch ms: min of next_change_ms over the scripts that ran successfully;
  // max() = "never" by the scripts' windows. Failed and quarantined scripts
  // do not contribute.
  int64_t next_change_ms = std::numeric_limits<int64_t>::max();
};

struct ScriptInfo {
  std::string name;
  std::string version;
  std::string description;
  std::vector<std::string> segments;  // declared, in declaration order
  std::string file;                   // path of the source file
  bool quarantined = false;
  int consecutive_failures = 0;
  // While quarantined: epoch ms (clock->NowMs() at quarantine +
  // quarantine_ms) after which the next evaluation retries the script;
  // max() when it lasts until the next reload (quarantine_ms = 0). 0 when
  // not quarantined.
  int64_t quarantined_until_ms = 0;
};

struct EvaluateOptions {
  // Record which events each script's helpers matched (for `segtool
  // explain`). Costs one branch per helper call when off.
  bool explain = false;
  // Run only the script with this name (fixtures, one-script runs). Empty
  // runs all. A quarantined script named here runs anyway.
  std::string_view only_script;
  // "now" for this evaluation (epoch ms); < 0 takes options.clock->NowMs().
  // Lets a caller that already fixed the batch time (the node) pass it.
  int64_t now_ms = -1;
};

class ScriptHost {
 public:
  virtual ~ScriptHost() = default;

  // Loads every script of options.scripts_dir. Errors: InvalidArgument for
  // bad options, NotFound for a missing directory, InvalidArgument with all
  // messages ("a.lua:3: ...; b.lua: ...") when a script fails to load,
  // Internal when the Lua state cannot be built.
  static StatusOr<std::unique_ptr<ScriptHost>> Create(const ScriptHostOptions& options);

  // Re-reads the directory into a new state and swaps it in if every script
  // loads; lifts all quarantines. On error the previous set keeps serving
  // and the error (as for Create) is returned and kept in
  // last_reload_status(). Call between users, on the owning thread.
  virtual Status Reload() = 0;
  // Thread-safe: asks for a Reload() at the start of the next EvaluateUser().
  virtual void RequestReload() = 0;
  // Status of the last reload attempt (explicit, requested or automatic).
  virtual Status last_reload_status() const = 0;

  // Short hex hash (12 chars) of the loaded scripts' file names and bytes.
  virtual std::string script_set_version() const = 0;

  // Runs the scripts for one user. `events` should be in time order (they
  // are sorted internally if not; positions in results refer to `events`).
  // Script failures are reported in `out`, not as a Status; the returned
  // Status is non-OK only when the host itself cannot run (then `out` is
  // left empty). `out` is overwritten; reusing it saves allocations.
  virtual Status EvaluateUser(std::string_view user_id, std::span<const EventView> events,
                              EvaluationResult* out) = 0;
  virtual Status EvaluateUser(std::string_view user_id, std::span<const EventView> events,
                              const EvaluateOptions& options, EvaluationResult* out) = 0;

  // The loaded scripts in load order (file name order).
  virtual std::vector<ScriptInfo> scripts() const = 0;
};

}  // namespace seg::segmenter
