// StatsWriter: counts users per (segment, day) in Redis HyperLogLogs.
// Start here: NewStatsWriter(options).
//
// Keys: hll:{<shard>}:<segment>:<yyyymmdd>, shard = UserShard(user id, S)
// (common/hash.h). The Lua procedures live in lua/stats_functions.lua (one
// library, compiled into this library) and PFADD on the server side:
//
// - batched_calls (default): WriteBatch() groups the batch's adds per Redis
//   Cluster slot and, within a slot, per key, and sends one FCALL
//   seg_add_users_v3 (seg_add_users_v2 with epochs off) per slot group
//   (split into chunks of at most max_call_adds members), which does one
//   PFADD per key with all of its members. On one Redis (S = 1) a batch of
//   2,000 users at 5 segment-days is 3 calls instead of 2,000.
// - batched_calls off: one FCALL seg_add_user per user with all its keys
//   (they share the hash tag {shard}, so one slot), the contract before v2.
//   Both functions stay registered, so writers of either version run side by
//   side during a rolling upgrade.
//
// Calls are pipelined: one round trip per Redis node per batch. The caller
// passes only segment-days not yet counted for the user (the segmenter knows
// them from family `s`) and marks them counted only after WriteBatch() is OK,
// i.e. after every call carrying one of the user's adds was acknowledged.
// PFADD is idempotent, so a replayed batch changes nothing, and a call that
// failed half-way (Redis does not roll a script back) is sent again whole.
// When Redis lost the function or script (restart without persistence,
// FUNCTION FLUSH, failover to a replica that never had it) the call answers
// "Function not found" / NOSCRIPT: the writer loads it again on every master
// and resends the failed calls. A call answered LOADING / BUSY / TRYAGAIN /
// MASTERDOWN / CLUSTERDOWN is resent whole after a short backoff, at most
// max_call_retries times per batch.
//
// Lost data (issue #17): each shard's key set has an epoch key,
// hll:{<shard>}:epoch (same hash tag, so same node), created with the shard's
// first data and lost only with it (a restart without persistence,
// FLUSHALL). The writer reads (or creates) every shard's epoch when it loads
// the procedures and knows them since: Epoch(user). The caller stores the
// epoch beside its `counted` marks and trusts the marks only while it is
// still the shard's epoch. Every seg_add_users_v3 call carries the epochs
// the writer believes for the shards it touches; the procedure creates a
// missing one and reports every mismatch, in the same call as the adds. A
// batch that met one completes its adds, updates Epoch() and returns
// ABORTED ("stats epoch changed"): the caller made its decisions on a void
// epoch and should segment the batch again (its marks now look void, so it
// counts those users again; PFADD makes the repeat harmless). A user with
// no adds (all already counted) still checks its shard's epoch: pass it
// with empty `adds` (an epoch-only call when nothing else goes to that
// slot). What epochs do not see: HLL keys lost without their epoch key
// (eviction under maxmemory, a manual DEL) or writes lost in an
// asynchronous failover to a replica that still has the epoch key.
//
// The writer also keeps the segment registry (hash `segments:registry`,
// segment -> "script@version") that seg-stats lists: the first time a
// process sees a segment it adds it with HSETNX (one extra command per new
// segment per process); RegisterSegments() records the declaring script.
//
// Errors: UNAVAILABLE / DEADLINE_EXCEEDED when Redis cannot be reached or
// keeps answering transient errors (the whole batch should be retried later;
// nothing partial is harmful), UNAUTHENTICATED / PERMISSION_DENIED for
// AUTH/ACL problems, INVALID_ARGUMENT for a malformed update,
// FAILED_PRECONDITION for any other server error reply, ABORTED for a
// changed epoch (above; the adds were all acknowledged). Metrics:
// seg_stats_writer_calls_total, seg_stats_writer_keys_total,
// seg_stats_writer_batch_latency_seconds, seg_stats_writer_reloads_total,
// seg_stats_writer_retries_total, seg_stats_writer_errors_total,
// seg_stats_writer_epoch_changes_total.
//
// Thread-safety: a StatsWriter is not thread-safe (it owns one connection
// per Redis node); use one per thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"
#include "stats/redis_cluster/redis_cluster.h"

namespace seg::stats {

// A day as the integer yyyymmdd (UTC), e.g. 20240501.
using Day = uint32_t;

// The UTC day of a Unix time in milliseconds.
Day DayFromUnixMs(int64_t unix_ms);
// "2024-05-01" or "20240501" -> 20240501. InvalidArgument for anything that is
// not a real calendar day (2024-02-30) or is outside years 1970..9999.
StatusOr<Day> ParseDay(std::string_view text);
// 20240501 -> "2024-05-01".
std::string FormatDay(Day day);
// Days since 1970-01-01 and back (for ranges and arithmetic).
int64_t DayToEpochDays(Day day);
Day EpochDaysToDay(int64_t epoch_days);

// The key of one per-shard, per-segment, per-day HyperLogLog:
// "<prefix>:{<shard>}:<segment>:<yyyymmdd>".
std::string HllKey(std::string_view prefix, uint32_t shard, std::string_view segment, Day day);

struct SegmentDay {
  std::string segment;
  Day day = 0;  // yyyymmdd
};

// One user's segment-days to add. Empty `adds`: nothing to add, but the
// caller relies on the user's counted marks, so its shard's epoch is checked
// (with epochs on; skipped otherwise).
struct UserUpdate {
  std::string user_id;
  std::vector<SegmentDay> adds;
};

enum class StatsCallMode {
  kFunction,           // FCALL seg_add_users_v2 / seg_add_user (Redis 7 Functions); falls back
                       // to kEvalsha when the server does not know FUNCTION or the ACL forbids it
  kEvalsha,            // EVALSHA of the same Lua, SCRIPT LOAD on NOSCRIPT
  kPfaddPerRoundTrip,  // baseline for the benchmark: one PFADD per key, one
                       // round trip each (no procedure, no pipelining)
};

struct StatsWriterOptions {
  RedisRouterOptions redis;  // single Redis or Cluster; AUTH/ACL under redis.node
  uint32_t shards = 1;       // S: users are split over S key sets; S = 1 on one Redis
  std::string key_prefix = "hll";
  StatsCallMode mode = StatsCallMode::kFunction;
  // true: seg_add_users_v2, many users per call (one per cluster slot and
  // chunk); false: seg_add_user, one call per user (the contract before v2).
  bool batched_calls = true;
  // Most (user, segment-day) adds in one batched call: bounds the time Redis
  // spends in one call (~1 ms at 4096 on the bench VM).
  int32_t max_call_adds = 4096;
  // Reload-and-resend rounds per batch for "Function not found"/NOSCRIPT.
  int max_reload_rounds = 3;
  // Resend rounds per batch for calls answered with a transient error
  // (LOADING, BUSY, TRYAGAIN, MASTERDOWN, CLUSTERDOWN); 10, 20, 40 ms apart.
  int32_t max_call_retries = 3;
  // Maintain `registry_key` (HSETNX on a segment's first sighting).
  bool update_registry = true;
  std::string registry_key = "segments:registry";
  // Days a (segment, day) key is kept after its day ends: every key the
  // procedure creates gets EXPIREAT <end of day (UTC) + hll_retention_days>
  // (HllExpireAtUnixS). 0 = keys never expire. Not applied in
  // kPfaddPerRoundTrip (the benchmark baseline). Keys written before this
  // existed get theirs from `segctl stats expire-sweep` (SweepHllExpiry).
  // Adds for a day already past retention are dropped (counters().past_retention).
  // How: the first call of this writer that touches a key asks the procedure
  // for EXPIREAT NX on it; the writer then leaves the key alone for
  // ttl_recheck_ms (so a key recreated meanwhile, e.g. after FLUSHALL, gets
  // its expiry within that interval). Steady-state cost in Redis: none.
  int32_t hll_retention_days = 400;
  int64_t ttl_recheck_ms = 3'600'000;  // see hll_retention_days; 0 = once per key per batch
  // Epoch keys (<key_prefix>:{<shard>}:epoch) and seg_add_users_v3, so that
  // lost Redis data is noticed (see the top of this file). Needs
  // batched_calls and mode function or evalsha; Epoch() is nullopt otherwise.
  bool epochs = true;

  // Reads <prefix>.shards, .key_prefix, .mode ("function", "evalsha",
  // "pfadd"), .batched_calls, .epochs, .max_call_adds, .max_call_retries, .registry_key,
  // .update_registry, .hll_retention_days, .ttl_recheck_ms and the
  // Redis settings under <prefix>.redis (see RedisRouterOptions::LoadFrom).
  Status LoadFrom(Config& config, std::string_view prefix);
};

// Totals since the writer was created (also exported as metrics).
struct StatsWriterCounters {
  int64_t calls = 0;           // procedure calls (or PFADDs in the baseline) acknowledged
  int64_t keys = 0;            // HLL updates acknowledged: (user, segment-day) adds
  int64_t changed = 0;         // keys whose sketch changed, per call (PFADD returned 1)
  int64_t reloads = 0;         // function/script reloads after a lost cache
  int64_t retries = 0;         // calls sent again whole after a transient error reply
  int64_t round_trips = 0;     // pipelines or single commands sent
  int64_t past_retention = 0;  // adds dropped: their day is past hll_retention_days
  int64_t expiry_checks = 0;   // keys sent with an expiry flag (EXPIREAT NX asked)
  int64_t epoch_changes = 0;   // shards whose known epoch changed (Redis lost their data)
  int64_t epoch_aborts = 0;    // batches answered ABORTED for a changed or unknown epoch
};

class StatsWriter {
 public:
  virtual ~StatsWriter() = default;

  // PFADDs every user into its segment-days: one procedure call per cluster
  // slot group and chunk (or per user), pipelined per node. OK = every call
  // was acknowledged by Redis. Updates
  // with no adds are skipped; an empty user id or segment, or a day that is
  // not yyyymmdd, is INVALID_ARGUMENT before anything is sent.
  virtual Status WriteBatch(std::span<const UserUpdate> batch) = 0;

  // Records which script (and version) declares each segment in the registry
  // (HSET segment "script@version"). Call when scripts (re)load.
  virtual Status RegisterSegments(const std::map<std::string, std::string>& segment_to_script) = 0;

  // Loads the function (or script) on every master now and, the first time,
  // every shard's epoch (SET NX + GET per shard, pipelined). WriteBatch()
  // does it lazily; call this to fail fast at startup.
  virtual Status LoadProcedures() = 0;

  // The epoch of `user_id`'s shard as this writer last saw it in Redis (""
  // = not known yet: the caller should treat its marks as void), or nullopt
  // when the writer keeps no epochs (StatsWriterOptions::epochs). Changes
  // only inside WriteBatch() and LoadProcedures().
  virtual std::optional<std::string_view> Epoch(std::string_view user_id) const {
    return std::nullopt;
  }

  virtual StatsCallMode mode() const = 0;  // may change from kFunction to kEvalsha
  virtual const StatsWriterCounters& counters() const = 0;
};

// The keyspace the writer and the query service share in the `stats`
// section: <prefix>.shards (1..65536), .key_prefix and .registry_key.
// Missing keys keep the values passed in.
Status LoadStatsKeyspace(Config& config, std::string_view prefix, uint32_t* shards,
                         std::string* key_prefix, std::string* registry_key);

StatusOr<std::unique_ptr<StatsWriter>> NewStatsWriter(const StatsWriterOptions& options);
// Uses an existing router (tests, or to share a topology).
std::unique_ptr<StatsWriter> NewStatsWriter(const StatsWriterOptions& options,
                                            std::unique_ptr<RedisRouter> router);

// When a (segment, day) key expires: the end of `day` (next midnight UTC) plus
// `retention_days`, in Unix seconds. The Lua procedure computes the same.
int64_t HllExpireAtUnixS(Day day, int32_t retention_days);

// What SweepHllExpiry did, summed over every master.
struct ExpirySweepReport {
  int64_t scanned = 0;    // keys matching <prefix>:* seen by SCAN
  int64_t had_ttl = 0;    // already expiring: left alone
  int64_t set = 0;        // EXPIREAT set (the expiry is in the future)
  int64_t expired = 0;    // older than retention: EXPIREAT in the past deleted them
  int64_t not_a_day = 0;  // the key does not end in a valid yyyymmdd: left alone
  int64_t vanished = 0;   // gone between SCAN and EXPIREAT (expired meanwhile)
  int64_t masters = 0;    // nodes swept
};

// The one-time sweep for keys written before retention existed (or by
// writers with retention 0): SCAN MATCH <key_prefix>:* on every master (also
// Redis Cluster), and for each key without a TTL EXPIREAT
// HllExpireAtUnixS(day in the key, retention_days). Keys that already have a
// TTL are skipped, so running it again changes nothing. A key whose expiry is
// already past is deleted by Redis at once (counted in `expired`, judged
// against `now_unix_s`). `scan_count` is SCAN's COUNT hint.
StatusOr<ExpirySweepReport> SweepHllExpiry(RedisRouter* router, std::string_view key_prefix,
                                           int32_t retention_days, int64_t now_unix_s,
                                           int scan_count = 1000);

// The key of a shard's epoch: "<prefix>:{<shard>}:epoch".
std::string EpochKey(std::string_view prefix, uint32_t shard);

// True for WriteBatch's ABORTED "stats epoch changed" (segment again).
bool IsEpochChange(const Status& status);

// The Lua library source (lua/stats_functions.lua) compiled into the binary.
std::string_view StatsFunctionsLua();

}  // namespace seg::stats
