// seg::bridge — the coprocessor bridge: turns committed store writes into
// ChangeNotices on the `user-changes` topic (key = user id, murmur2_random
// partitioner, so Java producers and consumers agree on partitions).
//
// A committed write is a list of CommittedRow {row key, newest cell
// timestamp, cell count}. The bridge coalesces it per user (one notice per
// distinct row: newest = max, count = sum) and stamps every notice with the
// time the store acknowledged the write, so a segmenter that reads the row
// after consuming the notice is guaranteed to see the data it announces.
//
// One library, two modes:
//   - client-side: the writer (seg-ingest) calls Publish() after the store
//     acknowledged its put; Publish returns only when Kafka acknowledged
//     every notice, so the writer may then commit its input offsets. Works
//     with any HBase (no server-side code).
//   - store-side: the store's write observer (see
//     coprocessor-bridge/store_observer/store_observer_adapter.h) calls Enqueue() from the
//     writing thread after each committed put, like an HBase RegionObserver's
//     postPut/postBatchMutate: any writer to the store triggers notices.
//     Enqueue never blocks on the network; a background thread re-produces
//     notices whose delivery failed until they are delivered or the pending
//     bound is hit (then they are counted as dropped and logged).
//
// Depends only on common/ (Kafka adapter, clock, metrics): store/ and
// ingest/ depend on the bridge, never the reverse.
//
// Thread-safety: a ChangeNotifier is thread-safe; Publish and Enqueue may be
// called concurrently from any number of threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/kafka.h"
#include "common/status.h"

namespace seg {
class ChangeNotice;  // proto/segmentation.proto
class Clock;
}  // namespace seg

namespace seg::bridge {

// What a committed write changed in one row.
struct CommittedRow {
  std::string row;                  // row key = user id bytes
  int64_t newest_timestamp_ms = 0;  // newest cell timestamp written (= event time)
  int64_t cell_count = 0;           // cells written to the row
};

struct BridgeOptions {
  // Topic the notices go to.
  std::string topic = "user-changes";
  // Publish() waits at most this long for Kafka to acknowledge every notice
  // of the call; beyond it returns DeadlineExceeded (the caller retries: a
  // duplicate notice is harmless, a missing one is not).
  int64_t publish_timeout_ms = 60'000;
  // Store-side mode: notices queued or in flight beyond this are dropped and
  // counted (seg_bridge_notices_dropped_total), so a Kafka outage cannot eat
  // the store server's memory. ~100 bytes each.
  int64_t max_pending = 1'000'000;
  // Store-side mode: delay between re-produce attempts of failed notices.
  int64_t retry_initial_ms = 100;
  int64_t retry_max_ms = 5'000;
};

// One notice per distinct row of `rows`, in first-seen order: newest event
// time = max over the row's entries, event count = sum (saturating at
// UINT32_MAX), acked_at_ms as given. Rows with an empty key are skipped.
std::vector<ChangeNotice> Coalesce(std::span<const CommittedRow> rows, int64_t acked_at_ms);

// Counters since creation (also exported as seg_bridge_* metrics).
struct NotifierStats {
  int64_t notices_produced = 0;   // handed to Kafka (retries included)
  int64_t notices_delivered = 0;  // acknowledged by Kafka
  int64_t delivery_failures = 0;  // failed deliveries (each is retried)
  int64_t notices_dropped = 0;    // store-side: over max_pending
  int64_t pending = 0;            // produced, not yet acknowledged
};

// Notices handed to Kafka by StartPublish(), not yet known to be delivered.
// Not thread-safe (one waiter); may outlive nothing but its notifier.
class PendingPublish {
 public:
  virtual ~PendingPublish() = default;
  // Serves delivery reports until every notice of the StartPublish call is
  // acknowledged. OK: all delivered. The first delivery failure's status
  // when one failed; DeadlineExceeded after `timeout` with some still
  // unacknowledged (Wait again, or publish the rows again).
  virtual Status Wait(std::chrono::milliseconds timeout) = 0;
  // Notices produced (after coalescing).
  virtual int64_t notices() const = 0;
};

class ChangeNotifier {
 public:
  // Creates the producer (idempotent, acks=all, murmur2_random). `clock`
  // (nullptr = real) must outlive the notifier. InvalidArgument for bad
  // Kafka properties.
  static StatusOr<std::unique_ptr<ChangeNotifier>> Create(const kafka::KafkaOptions& kafka,
                                                          const BridgeOptions& options = {},
                                                          const Clock* clock = nullptr);
  virtual ~ChangeNotifier() = default;

  // Client-side mode. Coalesces `rows`, produces the notices and waits until
  // Kafka acknowledged all of them. OK: every notice is delivered.
  // DeadlineExceeded: not all acknowledged within publish_timeout_ms;
  // Unavailable (or the delivery's own code): some delivery failed. On error
  // call again with the same rows (notices may then be duplicated, never
  // lost). `acked_at_ms` is when the store acknowledged the write; it must
  // not precede the acknowledgement.
  virtual Status Publish(std::span<const CommittedRow> rows, int64_t acked_at_ms) = 0;

  // Client-side mode, pipelined: Publish() without the wait. The writer
  // keeps the handle and Wait()s before committing its input, so the
  // notices of batch N fly while batch N+1 is being written. Errors: a
  // notice could not even be handed to Kafka (then publish again).
  virtual StatusOr<std::unique_ptr<PendingPublish>> StartPublish(std::span<const CommittedRow> rows,
                                                                 int64_t acked_at_ms) = 0;

  // Store-side mode. Coalesces and produces without waiting; failed
  // deliveries are re-produced in the background. Never blocks longer than
  // the Kafka adapter's queue_full_wait_ms.
  virtual void Enqueue(std::span<const CommittedRow> rows, int64_t acked_at_ms) = 0;

  // Waits until every notice enqueued so far is delivered (or dropped).
  // DeadlineExceeded naming how many are left.
  virtual Status Flush(std::chrono::milliseconds timeout) = 0;

  virtual NotifierStats stats() const = 0;

  // The clock given at creation (the real one by default).
  virtual const Clock* clock() const = 0;
};

}  // namespace seg::bridge
