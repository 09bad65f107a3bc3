// seg::ingest — the `events` topic -> the wide-row store -> change notices.
//
// An Ingester is a member of a Kafka consumer group on `events`. Each batch:
//
//   1. poll up to batch_max_events messages, for at most batch_max_ms;
//   2. decode (protobuf Event; a JSON object when the first non-blank byte
//      is '{') and validate each message; a bad one goes, with its original
//      bytes and a reason, to `events-deadletter` (DeadLetter proto + a
//      `reason` header) — the good ones of the batch still land;
//   3. encode each good event as one cell of family `e` in the user's row
//      (common/event_codec.h: qualifier = BE time + digest + type, cell
//      timestamp = event time, value = StoredEvent), grouped per row, and
//      write them with one store Put (duplicates collapse onto one cell:
//      a re-delivered event rewrites its own cell);
//   4. once the store acknowledged, publish one ChangeNotice per user
//      (coprocessor-bridge, client-side mode) and wait for Kafka to
//      acknowledge the notices and the dead letters;
//   5. only then store and commit the input offsets.
//
// At-least-once: whatever process dies at whatever point, the uncommitted
// batch is re-read and rewritten onto the same cells. Store failures are
// retried with backoff (common/backoff.h) without fetching further or
// committing: the consumer's partitions are paused (backpressure) and
// polled between attempts, so a store outage of any length keeps the group
// membership (max.poll.interval.ms); they resume with the next batch. If
// the membership is lost anyway, the batch is re-read by the next owner:
// still nothing lost.
//
// Thread-safety: an Ingester belongs to one thread (RunOnce/Run/Close);
// stats() may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "common/backoff.h"
#include "common/config.h"
#include "common/kafka.h"
#include "common/status.h"
#include "store/store.h"

namespace seg {
class Clock;
class Event;  // proto/events.proto
}  // namespace seg

namespace seg::ingest {

// ---------------------------------------------------------------- validation

// Why an event was rejected: the DeadLetter.reason, the `reason` header and
// the `reason` label of seg_ingest_deadletters_total. Stable names.
namespace reason {
inline constexpr std::string_view kUndecodable = "undecodable";        // neither protobuf nor JSON
inline constexpr std::string_view kOversized = "oversized";            // > max_event_bytes
inline constexpr std::string_view kMissingUserId = "missing_user_id";  // empty user id
inline constexpr std::string_view kUserIdTooLong = "user_id_too_long";
inline constexpr std::string_view kUserIdControlChars = "user_id_control_chars";
inline constexpr std::string_view kTimeInFuture = "time_in_future";  // > now + max_future_ms
inline constexpr std::string_view kTimeTooOld = "time_too_old";      // < now - retention_ms
inline constexpr std::string_view kUnknownType = "unknown_type";
inline constexpr std::string_view kBadIp = "bad_ip";
inline constexpr std::string_view kStoreRejected = "store_rejected";  // store said InvalidArgument
// Every reason, for series that exist (at 0) before the first dead letter.
inline constexpr std::string_view kAll[] = {
    kUndecodable,  kOversized,  kMissingUserId, kUserIdTooLong, kUserIdControlChars,
    kTimeInFuture, kTimeTooOld, kUnknownType,   kBadIp,         kStoreRejected};
}  // namespace reason

struct ValidationOptions {
  // Larger messages are rejected before decoding (bytes as consumed).
  int64_t max_event_bytes = 64 * 1024;
  // HBase allows 32 KiB row keys; user ids are cookies, 256 bytes is plenty.
  int64_t max_user_id_bytes = 256;
  // Clocks drift; events more than this ahead of our clock are rejected (ms).
  int64_t max_future_ms = 10 * 60 * 1000;
  // Family `e` TTL: older events would be invisible at once (ms, 60 days).
  int64_t retention_ms = 60ll * 24 * 3600 * 1000;
  // JSON input: unknown fields are an error by default (nothing is dropped
  // silently); partners with extra fields may set this.
  bool json_ignore_unknown_fields = false;

  // Reads `<prefix>.max_event_bytes`, ... Missing keys keep the defaults.
  Status LoadFrom(Config& config, std::string_view prefix = "ingest.validation");
};

struct Rejection {
  std::string_view reason;  // one of reason::k*
  std::string detail;       // human-readable context
};

// Decodes `bytes` (protobuf Event, or JSON when the first non-blank byte is
// '{') into *event and validates it at time `now_ms`. nullopt = good.
std::optional<Rejection> DecodeAndValidate(std::string_view bytes, const ValidationOptions& options,
                                           int64_t now_ms, Event* event);

// Validates an already decoded event. nullopt = good.
std::optional<Rejection> Validate(const Event& event, const ValidationOptions& options,
                                  int64_t now_ms);

// Parses one JSON object (proto3 JSON mapping of seg.Event) into *event.
Status ParseJsonEvent(std::string_view json, bool ignore_unknown_fields, Event* event);

// The store cell for a valid event: family, 17-byte qualifier, timestamp =
// event time, value = StoredEvent. InvalidArgument for a bad ip.
Status EncodeEventCell(const Event& event, std::string_view family, store::Cell* cell);

// ---------------------------------------------------------------- ingester

struct IngestOptions {
  kafka::KafkaOptions kafka;
  std::string events_topic = "events";
  std::string deadletter_topic = "events-deadletter";
  std::string changes_topic = "user-changes";
  std::string group_id = "seg-ingest";

  // A batch closes at this many messages or this long after its first
  // message, whichever comes first. 5000 x ~300 B = ~1.5 MB per store call.
  int32_t batch_max_events = 5000;
  int64_t batch_max_ms = 100;
  // ... or as soon as no message arrived for this long once the batch has
  // some (0: only the two bounds above). A batch then holds what arrived
  // during the previous store write, so it grows with the load by itself,
  // and a quiet stream's events do not wait out batch_max_ms (it was ~50 ms
  // of every event's latency at half the sustained rate, BENCHMARKS.md).
  int64_t batch_idle_ms = 10;

  std::string table = "users";
  std::string family = "e";

  ValidationOptions validation;

  // Store failures are retried forever (nothing is committed meanwhile),
  // with delays growing to max_ms.
  BackoffOptions store_backoff{100, 5000};
  // Kafka failures (notices, dead letters) likewise.
  BackoffOptions kafka_backoff{100, 5000};
  // Kafka drops a member that does not poll for this long (ms). Retries
  // poll the paused consumer, so only a single store call longer than
  // this (see the store's call timeout) costs a rebalance.
  int64_t max_poll_interval_ms = 5 * 60 * 1000;
  // Close() (and so SIGTERM) finishes the batches in flight, commits and
  // leaves the group within about this long (ms); what does not fit stays
  // uncommitted and is re-read.
  int64_t shutdown_timeout_ms = 4000;
  // Waiting for dead-letter deliveries before retrying them (ms).
  int64_t produce_timeout_ms = 60'000;
  // Commit offsets synchronously after each batch (false: async commit,
  // the next batch's commit covers a failed one; Close() commits sync).
  bool sync_commit = false;
  // Pipelining: a batch's notices and dead letters fly while the next
  // batches are decoded and written; its offsets are committed once they
  // are acknowledged. At most this many written batches wait for their
  // acknowledgements (0: finish each batch inside its RunOnce).
  int32_t max_batches_in_flight = 2;
  // A batch's rows are written as this many concurrent Puts (each row
  // stays atomic). The store serves each connection on its own thread.
  int32_t store_put_parallelism = 2;
  // Benchmark/baseline only: one store Put per event instead of per batch.
  bool unbatched_puts = false;
  // Publish a change notice per written user (ingest.notices.enabled).
  // Off when the store publishes them itself, for every writer: HBase's
  // NoticeEndpoint (coprocessor-bridge/hbase) or seg-store --notify-kafka;
  // ingest then only writes (and dead-letters).
  bool notices_enabled = true;
  // The ingest watermark (common/ingest_watermark.h): segmenters hold due
  // users (window lapses) until every event that arrived before their due
  // time is stored, so a lagging pipeline sends no exit an event already in
  // Kafka would take back. Written to the segmenters' due table and family
  // (tables.due.*) every watermark_interval_ms while it moves.
  bool watermark_enabled = true;
  int64_t watermark_interval_ms = 200;
  std::string watermark_table = "due";
  std::string watermark_family = "d";

  // Reads `ingest.*` (group_id, batch_*, validation, max_poll_interval_ms,
  // sync_commit, watermark.*), the shared `topics.*` and `tables.*`
  // (config/seg.example.yaml) and `kafka.*`. Missing keys keep the defaults.
  Status LoadFrom(Config& config);
};

// Counters since creation (the process-wide metrics are seg_ingest_*).
struct IngestStats {
  int64_t batches = 0;
  int64_t events_in = 0;        // messages consumed
  int64_t events_written = 0;   // cells acknowledged by the store
  int64_t dead_lettered = 0;    // messages delivered to the dead-letter topic
  int64_t notices = 0;          // change notices delivered
  int64_t store_retries = 0;    // failed store calls (each retried)
  int64_t kafka_retries = 0;    // failed notice/dead-letter deliveries (retried)
  int64_t commit_failures = 0;  // offset commits that failed (covered by the next)
  int64_t rebalances = 0;       // assignment changes after the first assignment
  bool ever_assigned = false;   // the group assigned this member partitions at least once
};

class Ingester {
 public:
  // `store` is not owned and must outlive the ingester (any backend: the
  // Thrift2 client or the embedded engine). `clock` (nullptr = real) stamps
  // validation and acked_at_ms. Creates the consumer (subscribed to
  // events_topic) and the producers; InvalidArgument for bad options.
  static StatusOr<std::unique_ptr<Ingester>> Create(const IngestOptions& options,
                                                    store::Store* store,
                                                    const Clock* clock = nullptr);
  virtual ~Ingester() = default;

  // Processes one batch (poll, validate, dead-letter, write, notify) and
  // commits the oldest batches in flight once their notices and dead
  // letters are acknowledged (see max_batches_in_flight). Returns the number of
  // messages polled; 0 when nothing arrived within batch_max_ms (the batch
  // in flight is then finished and committed). Cancelled when `stop` was
  // requested while retrying (the batch is then not committed: it will be
  // re-read). Fatal consumer errors are returned as they are.
  virtual StatusOr<size_t> RunOnce(std::stop_token stop = {}) = 0;

  // RunOnce until `stop` is requested or a fatal error; then Close().
  virtual Status Run(std::stop_token stop) = 0;

  // Finishes the batches in flight (one attempt each, bounded by
  // shutdown_timeout_ms), commits and leaves the group. Idempotent.
  virtual Status Close() = 0;

  virtual IngestStats stats() const = 0;
};

}  // namespace seg::ingest
