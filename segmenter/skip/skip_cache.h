// SkipCache: the last-segmented-timestamp cache of a segmenter node.
//
// How the node uses it (since the skip rule became clock-free): both times
// below are ticks of the node's own counter, not milliseconds of two
// machines' clocks. acked_at_ms is replaced by the tick at which the node
// knew the notice was appended (a high watermark above its offset,
// segmenter/internal/append_log.h), read_started_ms by the tick taken before
// the read, and skew_margin_ms is 0. The rule and the protocol below are
// unchanged; only the source of the two numbers moved. The text below keeps
// the millisecond wording the cache was designed with.
//
// The idea. A change notice says "user U's row got a write, acknowledged by
// the store at acked_at_ms". Segmenting U means reading U's whole row, so one
// read that *began* after a write was acknowledged has seen that write. The
// node remembers, per user, when its last successful segmentation read began
// (read_started_ms). A notice is already covered, and is skipped, iff
//
//     acked_at_ms + skew_margin_ms < read_started_ms            (strict)
//
// Strict, because both sides are millisecond floors of real instants: with
// A < R (integers) the real ack a < A+1 <= R <= r, so the write was acknowledged
// strictly before the read began; with A == R the order inside that
// millisecond is unknown, so the notice is processed. skew_margin_ms absorbs
// the difference between the clock that stamps acked_at_ms (ingest, after the
// store's ack) and this node's clock that stamps read_started_ms.
//
// The protocol that makes this safe with reads in flight:
//   1. read_started_ms = clock->NowMs()      BEFORE issuing the multi-get;
//   2. multi-get, run the scripts, publish;
//   3. RecordRead(user, read_started_ms)     only AFTER the read succeeded.
// A failed read records nothing (its notices are redelivered / retried). A
// notice consumed while a read of the same user is in flight is checked
// against the *previous* read, never the in-flight one, so it is processed.
// RecordRead keeps the maximum, so an older read finishing late never moves
// the timestamp backwards. (Publishing results out of order is the caller's
// business: do not publish a result whose read began before the last
// published one.)
//
// Data layout. An open-addressing table of 64-byte buckets (one cache line),
// six users per bucket, no probing beyond the home bucket:
//
//     uint32 fp_hi[6] | uint16 fp_lo[6] | uint32 ts[6] | uint32 unused
//        24 bytes          12 bytes        24 bytes        4 bytes
//
// h = MurmurHash64A(user_id, seed). The home bucket is fastrange(h, buckets)
// (the high bits of h); the slot stores the low 48 bits of h as fingerprint
// and the read start as milliseconds since a table epoch (0 = empty slot;
// 32 bits = 49.7 days, rebased in one pass when exceeded). 64/6 = 10.7 bytes
// per user: 10M users in 107 MiB, 50M users in 533 MiB.
//
// Why a collision can only cost a miss. A lookup answers "skip" only when it
// finds a slot whose (bucket, 48-bit fingerprint) equals the user's. For a
// table of at least 2^16 buckets (>= 393,216 users, 4 MiB) that pair
// determines all 64 bits of h (fastrange spreads the top 16 bits over distinct
// buckets), so another user's timestamp is returned only if the two user ids
// have the same 64-bit hash: probability 2^-64 per pair, i.e. ~2.7e-6 that
// any pair exists among 10M users resident together, and even then a wrong
// skip also needs the other user's read to begin after this user's write.
// (Smaller tables: 48 + log2(buckets) bits.) Everything else a hash table can
// do wrong only loses entries: a full bucket evicts, a timestamp older than
// the epoch is dropped, a rebase drops old entries; a lost entry makes the
// next notice of that user a miss (one extra segmentation), never a skip.
// MurmurHash64A has seed-independent multicollisions, so a party that chooses
// user ids could make two of its own ids share an entry; at worst one of its
// own notices is skipped.
//
// Eviction. A full bucket replaces the slot with the oldest read start. An
// entry is only useful for notices acknowledged before that read and not yet
// consumed, i.e. within the consumer lag, so the oldest read is the least
// useful one; a read older than every resident is not stored at all.
//
// Worked example (skew margin 50 ms). Page load at t=1000 fires a burst of
// events; ingest acknowledges writes at 1003, 1023, 1043 ... 1983 (20
// notices). The node takes the first notice at 1100 (lag ~100 ms): no entry,
// miss; the batch read starts at 1100 and succeeds: RecordRead(U, 1100).
// Notices acked at 1023 and 1043 arrive next: 1023+50 < 1100 and 1043+50 <
// 1100, skipped; 1063+50 = 1113 is not < 1100: processed, read starts at 1200,
// and so on. With the consumer 1 s behind, the first read begins after the
// whole burst was acknowledged and the 19 others are all skipped.
//
// Measured (bench/skip_bench.cc, Release, 2 shared cores under load ~10, so
// absolute times are pessimistic; ratios come from the same run): table at
// 80% of its slots, random users: ShouldSkip 276 ns CPU at 1M users and
// 265 ns at 10M, RecordRead 258 / 265 ns; std::unordered_map<uint64_t,
// int64_t> on the same hash takes 1.5-2.2x the time and ~42 bytes per user
// against 10.7 per slot (14.6 per resident user at 80% provisioning, where
// 91% of users fit: single-bucket overflow evicts the oldest reads first).
// On the bursty trace (bench/bursty_trace.h: 100k users, 11.1M notices) the
// rule alone skips few notices when the node reads within ~100 ms of the ack
// (a later write always needs a later read); with a 1 s coalescing delay
// before the read it skips 4.7M and the node segments 12x fewer times than it
// gets notices, with no final state missed.
//
// Thread-safety: thread-compatible, not thread-safe. One instance per
// partition owner (each user's notices go to one partition, hence one owner);
// callers that share an instance must serialise all calls themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "common/metrics.h"
#include "common/status.h"

namespace seg::segmenter {

class SkipCache {
 public:
  struct Options {
    // Memory for the table, bytes; rounded down to whole 64-byte buckets of 6
    // users (10.7 bytes per user). 64 MiB remembers ~6.3M users: size it for
    // the users active within the longest consumer lag you want to absorb.
    size_t capacity_bytes = size_t{64} << 20;
    // Largest difference between the clock stamping acked_at_ms and this
    // node's clock, ms. NTP keeps hosts in one data center within a few ms;
    // 50 ms leaves room. Too small risks a skipped write, too large only
    // costs skips.
    int64_t skew_margin_ms = 50;
    // Seed of the user-id hash. Any value; a per-deployment value makes hash
    // collisions differ between deployments.
    uint64_t hash_seed = 0x5C1BCAC4E5EEDull;
    // Extra labels for the seg_segmenter_skip_cache_* counters.
    metrics::Labels metrics_labels;
  };

  struct Stats {
    uint64_t hits = 0;             // ShouldSkip returned true
    uint64_t misses = 0;           // ShouldSkip returned false
    uint64_t misses_absent = 0;    // ... of which: user not in the table
    uint64_t records = 0;          // RecordRead calls
    uint64_t evictions = 0;        // entries replaced by another user
    uint64_t records_dropped = 0;  // RecordRead not stored (too old / full)
  };

  // Fails with InvalidArgument when capacity_bytes holds less than one bucket
  // or skew_margin_ms is negative or above one day.
  static StatusOr<std::unique_ptr<SkipCache>> Create(const Options& options);

  virtual ~SkipCache() = default;

  // True iff the last successful segmentation read of `user_id` began after
  // acked_at_ms + skew_margin_ms, i.e. the notice is covered. False when
  // unknown (never seen, evicted) or when the write may be newer than that
  // read. Any acked_at_ms value is accepted (data from Kafka).
  virtual bool ShouldSkip(std::string_view user_id, int64_t acked_at_ms) = 0;

  // Records that a segmentation read of `user_id` that began at
  // read_started_ms (this node's wall clock, taken before the multi-get)
  // succeeded. Call only after success. Keeps the later of the stored and the
  // given time. Values outside [1, 2^62) are ignored.
  virtual void RecordRead(std::string_view user_id, int64_t read_started_ms) = 0;

  // The read start RecordRead stored for `user_id`, or -1 when none is
  // remembered. A hint only (the node's leading-edge policy asks whether the
  // user was read lately); never a reason to skip. Counts nothing.
  virtual int64_t LastRead(std::string_view user_id) const = 0;

  // Drops what the cache remembers of `user_id` (a forgotten user); its next
  // notice is then never skipped.
  virtual void Forget(std::string_view user_id) = 0;

  // Users the table can hold, users it holds, bytes it allocated (fixed at
  // construction).
  virtual size_t capacity() const = 0;
  virtual size_t size() const = 0;
  virtual size_t memory_bytes() const = 0;

  virtual Stats stats() const = 0;
  // Pushes counts not yet exported to the metrics registry (they are pushed
  // every 4096 operations and on destruction).
  virtual void FlushMetrics() = 0;
};

}  // namespace seg::segmenter
