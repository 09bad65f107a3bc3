// Backfill: after the stored script-set version changes, re-evaluate every
// stored user once. A store scan of `users` family `s` (every user ever
// segmented has a state cell) sends ChangeNotice{kind=DEFINITION_CHANGE,
// script_set_version=V} keyed by user id to `user-changes`, so each user's
// partition owner re-evaluates it (and seeds its due time) like any notice.
//
// The job lives next to the script set (segmeta/m, row `scripts`, cells
// `backfill:*`, script_set.h): a push writes a fresh job (target = the new
// version, empty cursor, free lease) in the same mutation as the files, so
// a newer version always restarts the scan from the beginning and the old
// job's runner loses its lease.
//
// Any segmenter may run the job; one at a time holds the lease cell
// (`owner@expiry_ms`, taken and renewed with CheckAndMutate on the exact
// value read, taken over once expired; expiry is wall-clock time, so
// lease_ms must dwarf the nodes' clock skew). The cursor (last row key sent) is
// saved only after the producer flushed every notice up to it, and only
// while the saver still holds the lease. Delivery is at least once: a crash
// between the flush and the cursor save re-sends that step's notices (at
// most max_users per step), which the node handles as harmless repeats.
//
// Thread-safety: a Backfill is used by one thread (RunSome); the store and
// producer may be shared.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/kafka.h"
#include "common/metrics.h"
#include "common/status.h"
#include "proto/segmentation.pb.h"
#include "store/store.h"

namespace seg::segmenter::internal {

// Qualifiers in the script-set row (segmeta/m/scripts).
inline constexpr std::string_view kVersionQualifier = "version";
inline constexpr std::string_view kPushedAtQualifier = "pushed_at";
inline constexpr std::string_view kFilePrefix = "file:";
inline constexpr std::string_view kJobTarget = "backfill:target";
inline constexpr std::string_view kJobCursor = "backfill:cursor";
inline constexpr std::string_view kJobStartedAt = "backfill:started_at";
inline constexpr std::string_view kJobFinishedAt = "backfill:finished_at";
inline constexpr std::string_view kJobDone = "backfill:done";
inline constexpr std::string_view kJobPublished = "backfill:published";
inline constexpr std::string_view kJobLease = "backfill:lease";
inline constexpr std::string_view kJobImmediate = "backfill:immediate";

// The cells a push writes to start a job for `version` at `now_ms`.
// `immediate`: skip start_delay_ms (a bootstrap: no node runs an older set
// from the store, every node loads this one before consuming).
void AppendNewJob(std::string_view family, std::string_view version, int64_t now_ms, bool immediate,
                  std::vector<store::Cell>* puts);

struct BackfillOptions {
  // Where the script set and its job live (script_set.h).
  std::string meta_table = "segmeta";
  std::string meta_family = "m";
  std::string meta_row = "scripts";
  // What is scanned and where the notices go.
  std::string users_table = "users";
  std::string state_family = "s";
  std::string notices_topic = "user-changes";
  // Notices per second, across the steps of this runner; 0 = unlimited.
  // A token bucket holding 100 ms worth (at least 1) smooths the steps.
  int64_t users_per_s = 20000;
  // A job starts this long after its push (backfill:started_at, the
  // pusher's clock), so that every node has polled and loaded the new
  // version (scripts.sync_interval_ms, 2 s, plus a reload) before its users'
  // notices arrive: a node still on the old set would re-evaluate them with
  // it and find nothing changed.
  int64_t start_delay_ms = 10000;
  // How long a taken lease stays valid without renewal (each step renews it
  // once half of it has passed). A crashed runner's job resumes after this.
  int64_t lease_ms = 30000;
  // Rows per store round trip.
  int32_t scan_batch_rows = 500;
  // Longest wait for the step's notices to be acknowledged.
  int64_t flush_timeout_ms = 30000;
  // Identifies this runner in the lease; "" = host:pid:random. Must be
  // unique per runner: a runner treats a lease with its id as its own.
  std::string owner_id;
  // A progress line every this many users or this long, whichever first.
  int64_t log_every_users = 100000;
  int64_t log_every_ms = 10000;
  Clock* clock = nullptr;  // nullptr = Clock::Real()
};

// The job as stored.
struct BackfillStatus {
  std::string version;  // stored script-set version ("" = none)
  std::string target;   // version the job re-evaluates for
  std::string cursor;   // last row key sent and acknowledged ("" = none yet)
  bool done = false;
  bool immediate = false;  // starts without start_delay_ms (bootstrap)
  int64_t started_at_ms = 0;
  int64_t finished_at_ms = 0;
  int64_t published = 0;  // notices acknowledged so far
  std::string lease_owner;
  int64_t lease_expiry_ms = 0;
};

StatusOr<BackfillStatus> ReadBackfillStatus(store::Store* store, const BackfillOptions& options);

class Backfill {
 public:
  // `store` and `producer` must outlive the Backfill.
  Backfill(store::Store* store, kafka::Producer* producer, BackfillOptions options);
  ~Backfill();

  struct Step {
    enum class State {
      kIdle,             // no job, or it is done
      kLeasedElsewhere,  // another runner holds a valid lease
      kRateLimited,      // no tokens yet
      kStarting,         // the job waits out start_delay_ms after its push
      kProgress,         // sent and saved `published` notices; more remain
      kFinished,         // this step finished the job
      kLostLease,        // sent, but the lease was lost (takeover or new push)
    };
    State state = State::kIdle;
    int64_t published = 0;  // notices sent and acknowledged in this step
    std::string version;    // the job's target
    std::string cursor;     // cursor after the step
    int64_t wait_ms = 0;    // suggested pause before the next step
  };

  // One step: reads the job, takes or renews the lease, sends up to
  // `max_users` notices (fewer when rate-limited), flushes them and saves
  // the cursor. Errors (store, Kafka flush) leave the cursor where it was,
  // so the next step re-sends from there.
  StatusOr<Step> RunSome(int64_t max_users);

  // Gives the lease up if held (on shutdown), so another runner continues
  // at once instead of after lease_ms.
  Status Release();

  const std::string& owner_id() const { return options_.owner_id; }

 private:
  StatusOr<bool> CasLease(const std::string& expected, std::vector<store::Cell> puts);
  std::string LeaseValue(int64_t expiry_ms) const;
  void RefillTokens();

  store::Store* store_;
  kafka::Producer* producer_;
  BackfillOptions options_;
  Clock* clock_;
  std::string held_lease_;  // the lease value this runner last wrote ("" = none)
  double tokens_ = 0;
  int64_t last_refill_us_ = -1;
  // Reused across rows and steps: no per-row allocation in the scan loop
  // beyond what the scanner itself returns.
  ChangeNotice notice_;
  std::string value_;
  std::vector<store::RowResult> rows_;
  int64_t logged_at_ms_ = 0;
  int64_t logged_published_ = 0;
  int64_t rate_base_ms_ = 0;
  int64_t rate_base_published_ = 0;
  metrics::Counter published_total_;
  metrics::Counter scanned_total_;
  metrics::Gauge running_;
  metrics::Gauge job_published_;
};

}  // namespace seg::segmenter::internal
