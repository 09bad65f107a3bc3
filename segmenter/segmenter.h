// seg::segmenter — a segmenter node: consumes ChangeNotices from
// `user-changes` in a consumer group, skips what it can (bot blacklist, then
// the last-segmented-timestamp cache), reads the surviving users' rows with
// one multi-get per batch, runs the segment scripts, publishes a
// SegmentationResult per user, adds the batch's users to per-day
// HyperLogLogs with a few Redis procedure calls (one per cluster slot and
// chunk, stats/writer/stats_writer.h), writes the new membership back to family
// `s`, and only then commits the batch's offsets (docs/ARCHITECTURE.md,
// "Data flow", steps 1-7). It also keeps memberships true over time: due
// users are re-segmented when a window lapses (SCHEDULE), DEFINITION_CHANGE
// notices re-evaluate a user after the script set changed, FORGET notices
// delete a user, and a newly blacklisted bot exits its segments.
//
// The node sees its collaborators through the small interfaces below; only a
// main() names the concrete classes (LuaJIT script host, Redis stats writer,
// RocksDB or Thrift2 store, librdkafka).
//
// Thread-safety: a Node runs on one thread (Run or RunOnce); RequestStop()
// and RequestReload() may be called from any thread or a signal handler's
// helper thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/config.h"
#include "common/event.h"
#include "common/kafka.h"
#include "common/status.h"
#include "segmenter/skip/bot_blacklist.h"

namespace seg::store {
class Store;
}

namespace seg::segmenter {

// "Never" for due times: only new events can change the answer.
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

// What the scripts said about one user.
struct Evaluation {
  std::vector<std::string> segments;        // sorted, unique
  std::vector<std::string> failed_scripts;  // errored or quarantined for this user
  // The segments the failed scripts declare, sorted and unique: the node
  // keeps the user's previous membership of these, so a failure never fakes
  // an exit (or an entry).
  std::vector<std::string> failed_segments;
  // The earliest epoch ms at which the scripts' answer could change with no
  // new events (a window edge; docs/sdk/README.md). Early is allowed (a
  // wasted re-evaluation), late never. kNever: only new events change it.
  int64_t next_change_ms = kNever;
};

// Runs the segment scripts (the LuaJIT script host in production).
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  // `events` are in time order. A failing script is reported in
  // failed_scripts, not as an error; a non-OK Status means no evaluation.
  virtual Status Evaluate(std::string_view user_id, std::span<const EventView> events,
                          int64_t now_ms, Evaluation* out) = 0;
  // Hash of the loaded scripts; goes into every result.
  virtual std::string ScriptSetVersion() = 0;
  // Reloads scripts from their directory; keeps the old set on error.
  virtual Status Reload() = 0;
};

// One user's stats update: PFADD user into (segment, day) for each pair.
// No pairs: the user's counted marks were trusted, so the sink checks that
// its epoch still holds (Epoch()).
struct StatsUpdate {
  std::string user_id;
  std::vector<std::pair<std::string, int32_t>> segment_days;  // (segment, yyyymmdd)
};

// Writes HyperLogLog adds (Redis Functions in production).
class StatsSink {
 public:
  virtual ~StatsSink() = default;
  // A few procedure calls per batch (one per Redis Cluster slot and chunk),
  // pipelined. OK = every update acknowledged. ABORTED with
  // stats::IsEpochChange(): the adds are done, but some user's epoch was
  // not Redis's (Redis lost data): segment the batch again.
  virtual Status Write(std::span<const StatsUpdate> updates) = 0;
  // The stats epoch of the user's HLL key set ("" = not known), kept in
  // SegmentState::counted_epoch beside the counted marks; marks of another
  // epoch are void. nullopt: the sink keeps no epochs (marks are trusted).
  virtual std::optional<std::string_view> Epoch(std::string_view user_id) { return std::nullopt; }
};

struct NodeOptions {
  kafka::KafkaOptions kafka;
  std::string group_id = "segmenter";
  std::string notices_topic = "user-changes";
  std::string results_topic = "segmentation-results";

  // A batch closes at this many notices or this long after its first one;
  // small enough that a batch finishes far within max.poll.interval.ms.
  int32_t batch_max_notices = 2000;
  int32_t batch_max_ms = 50;

  std::string table = "users";
  std::string events_family = "e";
  std::string state_family = "s";
  // Per-user read caps, so a bot row of a million cells cannot exhaust memory.
  int32_t max_events_per_user = 2000;
  int32_t history_days = 60;
  // Benchmark baseline only: a store Get per user (its events, then its
  // state) instead of one MultiGet per batch, to measure what batching the
  // reads buys. Leave false in production.
  bool unbatched_reads = false;

  // false: publish a result only when membership changed (or for a new user).
  bool publish_every_segmentation = true;

  // When a notice's user is read (docs/ARCHITECTURE.md, "Read policy").
  // A page load's burst of events (background tabs, trackers) lands within
  // ~1 s; reading once per burst instead of once per notice is what the skip
  // cache saves (bench/skip_bench, bursty trace, notices per segmentation
  // and write-to-read p99 in the sim: kDelay 300 ms 6.3x / 610 ms, 500 ms
  // 8.3x / 807 ms; kLeadingEdge 150 ms 3.4x / 285 ms, 200 ms 3.8x / 330 ms, 300 ms
  // 4.5x / 420 ms; kAdaptive 150 ms 3.4x / 254 ms, but in the pipeline 1.12-1.17x
  // leading edge's p99).
  //   kLeadingEdge: a user not read within the last read_delay_ms, with
  //     nothing queued, is read at once; notices arriving while its last
  //     read is younger than read_delay_ms wait for one follow-up read at
  //     that read + read_delay_ms. Without the skip cache every user is read
  //     at once.
  //   kDelay: every batch waits until its newest notice was acknowledged
  //     read_delay_ms ago (the policy before 2026-12-05; with 300 ms or more
  //     for >= 5x fewer segmentations than notices, at ~300 ms more latency).
  //   kAdaptive: as kLeadingEdge, but a user read within the last
  //     read_delay_ms waits for a follow-up due read_delay_ms after its
  //     oldest waiting notice's write was acknowledged, kept within
  //     [its last read + read_delay_min_ms, + read_delay_max_ms]: a notice
  //     that arrives late has spent its wait already
  //     (segmenter/internal/read_policy.h).
  // 0 = read at once under any policy.
  enum class ReadPolicy { kLeadingEdge, kDelay, kAdaptive };
  ReadPolicy read_policy = ReadPolicy::kLeadingEdge;
  int64_t read_delay_ms = 150;
  // kAdaptive's bounds on a follow-up read's distance from the user's last
  // read: the least coalescing a burst gets (min), the longest wait (max).
  int64_t read_delay_min_ms = 50;
  int64_t read_delay_max_ms = 500;
  // Batches waiting out their read delay are queued while polling goes on,
  // so the delay is paid once per notice, not once per batch behind it.
  // Past this many queued notices polling stops until the oldest is due.
  int32_t max_queued_notices = 20'000;

  // Skip rules.
  bool skip_cache_enabled = true;
  int64_t skip_cache_bytes = 64ll << 20;
  // Bot blacklist: a sustained notice rate (poll time) and the row's
  // behaviour (client rotation, crawl cadence; on the normal read).
  BotOptions bots;

  // Membership over time (docs/ARCHITECTURE.md "Membership over time").
  // Every evaluation stores the user's due time, the earliest moment its
  // membership could change with no new event, as a row of `due_table`
  // keyed by user-changes partition, due time (8 bytes big-endian) and user;
  // the partition's owner scans its rows and re-segments the due users
  // (reason SCHEDULE), bypassing the skip cache.
  std::string due_table = "due";
  std::string due_family = "d";
  bool schedule_enabled = true;
  // How often the owned partitions' due rows are scanned: a window's exit
  // reaches partners about this late at most, plus one batch.
  int64_t due_scan_interval_ms = 1000;
  // Due users fired per partition and scan (one scan batch); when a
  // partition has more, the next scan follows at once.
  int32_t due_batch_users = 1000;
  // A due time is never sooner than now + this, so an answer that flips at
  // every evaluation cannot spin the node.
  int64_t min_due_delay_ms = 1000;
  // Ingest watermark (common/ingest_watermark.h): a due user fires only
  // once every event that arrived before its due time (less
  // due_allowed_lateness_ms) is stored, so a pipeline running behind does
  // not exit a user whose next event already waits in Kafka. Exits then
  // come as late as the pipeline is behind, but at most due_max_hold_ms
  // late (an ingester gone for good must not freeze every exit); 0 turns
  // the hold off. Without published watermarks (no ingester writes them)
  // due users fire at their due time.
  int64_t due_max_hold_ms = 600'000;
  int64_t due_allowed_lateness_ms = 0;
  // A user for whom a script failed keeps that script's previous membership
  // and is evaluated again after this long (quarantines end, budgets reset).
  int64_t failure_recheck_ms = 600'000;
  // Membership kept from before for a failing script for longer than this
  // counts in seg_segmenter_stale_memberships_total and logs a warning
  // (config key scripts.max_stale_ms).
  int64_t max_stale_ms = 3'600'000;
  // Forget (a FORGET notice) publishes a tombstone: key = user id, null
  // value. Off for partners whose old code reads null as an empty result.
  bool forget_tombstones = true;

  // Reads `<prefix>.*` keys, the shared topics.changes/results and
  // tables.users.*/due.* (config/seg.example.yaml), and kafka.*.
  Status LoadFrom(Config& config, std::string_view prefix = "segmenter");
};

struct NodeStats {
  int64_t notices = 0;
  int64_t malformed_notices = 0;
  int64_t skipped_by_cache = 0;
  int64_t skipped_as_bot = 0;
  int64_t bots_flagged = 0;  // BOT results: newly blacklisted users, each exiting once
  int64_t segmented = 0;
  int64_t results_published = 0;
  int64_t stats_updates = 0;
  int64_t batches = 0;
  int64_t failed_batches = 0;
  int64_t queued_notices = 0;      // polled, waiting out the read delay (not in `notices` yet)
  int64_t scheduled = 0;           // users re-segmented because their due time passed
  int64_t definition_changes = 0;  // users re-segmented for a DEFINITION_CHANGE notice
  int64_t forgotten = 0;           // users forgotten (FORGET notices)
  int64_t stale_memberships = 0;   // kept for a failing script beyond max_stale_ms
  int64_t stats_recounts = 0;      // users counted again: their marks' stats epoch was void
};

class Node {
 public:
  virtual ~Node() = default;

  // Polls one batch into the read-delay queue, then processes every queued
  // batch that is due (all of them at once when read_delay_ms is 0), each
  // completely or given up for redelivery on failure. Returns the number of
  // notices processed (0 while batches wait out their delay).
  virtual StatusOr<int> RunOnce() = 0;

  // Runs until RequestStop(); then leaves the group cleanly.
  virtual Status Run() = 0;
  virtual void RequestStop() = 0;
  // Scripts are reloaded between batches.
  virtual void RequestReload() = 0;

  virtual NodeStats stats() const = 0;
  virtual Status Close() = 0;
};

// `store`, `evaluator` and `stats` must outlive the node. `clock` defaults to
// the real clock.
StatusOr<std::unique_ptr<Node>> CreateNode(const NodeOptions& options, store::Store* store,
                                           Evaluator* evaluator, StatsSink* stats,
                                           Clock* clock = nullptr);

// UTC yyyymmdd of a Unix epoch ms time.
int32_t DayOf(int64_t epoch_ms);

}  // namespace seg::segmenter

namespace seg::stats {
class StatsWriter;
}

namespace seg::segmenter {
class ScriptHost;

// Adapters from the production parts to the node's interfaces. The wrapped
// objects are not owned and must outlive the adapter.
//
// With a `registry`, the evaluator keeps the segment registry that seg-stats
// lists (StatsWriter::RegisterSegments) in step with the loaded scripts:
// whenever an evaluation reports a script-set version not yet registered
// (startup, Reload(), or the host's own reload on a changed file) it records
// every declared segment; a failed update is retried at most every 5 s.
// `registry` is used on the node's thread, like the stats sink's writer.
std::unique_ptr<Evaluator> NewScriptHostEvaluator(ScriptHost* host,
                                                  stats::StatsWriter* registry = nullptr);
std::unique_ptr<StatsSink> NewStatsWriterSink(stats::StatsWriter* writer);

// Records segment -> "script@version" for every script `host` has loaded.
Status RegisterScriptSegments(const ScriptHost& host, stats::StatsWriter* registry);

}  // namespace seg::segmenter
