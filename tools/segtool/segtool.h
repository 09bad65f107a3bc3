// seg::segtool — the script developers' kit behind the `segtool` command:
//   test     run script fixtures, print failures with the events matched
//   run      evaluate every script for one stored user, with timings
//   explain  why one stored user is in or out of one segment
//   shadow   dry run of a candidate script on live `user-changes` traffic
//   preview  the same dry run over stored history (a store scan)
//   users    stored user ids with their segments (ids to try run/explain on)
// Everything is read-only towards the pipeline: no results, no stats, no
// store writes, and shadow never commits offsets (its own consumer group).
// Output goes to the streams passed in; errors are Status values.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "segmenter/script_host/script_host.h"
#include "segmenter/segmenter.h"
#include "store/store.h"

namespace seg::segtool {

// What every store-reading command needs; keys shared with seg-segmenter.
struct ToolOptions {
  segmenter::ScriptHostOptions host;  // scripts.dir, scripts.cpu_budget_ms, ...
  store::StoreOptions store;          // store.* (default backend thrift)
  segmenter::NodeOptions node;        // table, families, history, kafka, topic
  int64_t now_ms = -1;                // "now" of the evaluation; < 0 = clock
};

// Reads scripts.*, store.*, segmenter.* and kafka.* from `config`. Keys of
// other binaries in a shared file are ignored; a key no binary knows is an
// error naming the nearest known key (common/config_keys.h).
Status LoadToolOptions(Config& config, ToolOptions* out);

// The error text for a missing scripts directory: where it was looked for
// and how to name another one.
std::string MissingScriptsDir(const std::string& dir);

// ------------------------------------------------------------------ test

struct TestOptions {
  std::string scripts_dir = "scripts";  // --scripts, else the config's scripts.dir
  std::vector<std::string> scripts;     // names or paths; empty = every script
  bool verbose = false;                 // also list passing cases
};

struct TestSummary {
  int scripts = 0;
  int cases = 0;
  int failed = 0;  // failed cases, plus scripts without fixtures
};

// Fixtures: scripts_dir/tests/<name>.json or scripts_dir/<name>.test.json.
// Errors: a script that does not load, a malformed fixture file.
StatusOr<TestSummary> RunTests(const TestOptions& options, std::ostream& out);

// --------------------------------------------------------- run / explain

Status RunUser(const ToolOptions& options, const std::string& user_id, std::ostream& out);

struct ExplainResult {
  bool in_segment = false;
  std::string script;
  std::vector<int64_t> matched_event_times;  // of the events the helpers matched
  std::string deciding;                      // the deciding condition, one line
};

StatusOr<ExplainResult> ExplainUser(const ToolOptions& options, const std::string& user_id,
                                    const std::string& segment, std::ostream& out);

// ----------------------------------------------------------------- users

struct UsersOptions {
  int64_t limit = 10;   // stop after this many users
  std::string segment;  // only users whose stored membership holds it
};

// Stored user ids (a store scan, in row order) with their event count in the
// history window and their stored segments: ids to try run/explain on.
// NotFound when none matches.
Status ListUsers(const ToolOptions& options, const UsersOptions& users, std::ostream& out);

// ------------------------------------------------------ shadow / preview

// Running totals of a dry run, compared with the state in family `s`
// restricted to the candidate's declared segments.
struct DryRunTotals {
  int64_t notices = 0;          // shadow: notices consumed
  int64_t rows_seen = 0;        // preview: rows scanned (before sampling)
  int64_t users_evaluated = 0;  // evaluations that ran (including errors)
  int64_t in_segments = 0;      // users the candidate puts in >= 1 segment
  int64_t would_enter = 0;      // users entering >= 1 segment
  int64_t would_exit = 0;       // users exiting >= 1 segment
  int64_t errors = 0;           // failed evaluations
  double p50_us = 0, p99_us = 0;
  std::map<std::string, int64_t> entered;  // per segment
  std::map<std::string, int64_t> exited;
};

struct ShadowOptions {
  std::string script_file;              // the candidate script (a .lua file)
  int64_t max_notices = 0;              // stop after this many notices (0 = no limit)
  int64_t duration_ms = 0;              // stop after this long (0 = no limit)
  std::string offset_reset = "latest";  // of the shadow group: latest | earliest
  std::string group_id;                 // default segtool-shadow-<script>-<random>
  int64_t report_every_ms = 1000;       // totals line on `progress`
  bool list_users = false;              // print every would-enter/exit user
};

StatusOr<DryRunTotals> Shadow(const ToolOptions& options, const ShadowOptions& shadow,
                              std::ostream& out, std::ostream& progress);

struct PreviewOptions {
  std::string script_file;
  double sample_rate = 1.0;  // fraction of users, chosen by a hash of the id
  int64_t max_rows = 0;      // stop after this many rows (0 = all)
  bool count_first = true;   // count rows first so the progress bar has an end
  bool list_users = false;
};

StatusOr<DryRunTotals> Preview(const ToolOptions& options, const PreviewOptions& preview,
                               std::ostream& out, std::ostream& progress);

// "users=.. enter=.. exit=.. ..." (one line, no newline).
std::string FormatTotals(const DryRunTotals& totals);

}  // namespace seg::segtool
