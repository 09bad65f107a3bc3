// Kafka adapter over librdkafka: a producer with delivery reports and tagged
// messages, a consumer-group consumer with manual offset storing/commits and
// rebalancing (eager by default, cooperative on request) surfaced as events, and topic creation.
// librdkafka stays behind this header (pimpl).
//
// Thread-safety: Producer::Produce may be called from any thread;
// PollDeliveries/Flush may run concurrently with Produce, and the delivery
// callback runs on whichever thread is inside PollDeliveries/Flush/Produce.
// A Consumer belongs to one thread: PollBatch, StoreOffsets, Commit and the
// rebalance callback (called from inside PollBatch/Close) all run there.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"
#include "common/status.h"

namespace seg::kafka {

struct KafkaOptions {
  std::string bootstrap_servers = "127.0.0.1:9092";
  std::string client_id = "segengine";
  // librdkafka properties applied verbatim after the adapter's defaults, so
  // they win (SASL/TLS, session.timeout.ms, linger.ms, ...).
  std::map<std::string, std::string> properties;
  // Produce() waits at most this long for room when the local queue is full.
  int64_t queue_full_wait_ms = 5000;

  // Reads `<prefix>.bootstrap_servers`, `.client_id`, `.queue_full_wait_ms`
  // and the map `<prefix>.properties`. Missing keys keep the defaults.
  Status LoadFrom(Config& config, std::string_view prefix = "kafka");
};

struct TopicPartition {
  std::string topic;
  int32_t partition = -1;
  auto operator<=>(const TopicPartition&) const = default;
};

struct HeaderView {
  std::string_view key;
  std::string_view value;
};

// ---------------------------------------------------------------- producer

struct DeliveryReport {
  uint64_t tag = 0;  // what the caller passed to Produce
  Status status;     // OK once acknowledged by all in-sync replicas
  int32_t partition = -1;
  int64_t offset = -1;
};

class Producer {
 public:
  using DeliveryCallback = std::function<void(const DeliveryReport&)>;

  // With a callback, each report is handed to it; without one, reports queue
  // up for PollDeliveries() (call it regularly). Idempotent, acks=all,
  // murmur2_random partitioner (same partitions as Java clients).
  static StatusOr<std::unique_ptr<Producer>> Create(const KafkaOptions& options,
                                                    DeliveryCallback on_delivery = nullptr);
  // Waits up to 2 s for outstanding deliveries (the callback may still run),
  // then drops what is left with a warning: call Flush first.
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Enqueues a copy of the message; never waits on the network. When the
  // local queue is full it serves reports and retries for up to
  // queue_full_wait_ms, then returns ResourceExhausted.
  Status Produce(std::string_view topic, std::string_view key, std::string_view value,
                 std::span<const HeaderView> headers = {}, uint64_t tag = 0);
  // A message with a null value (a tombstone: compaction drops the key).
  // An empty but non-null `value` in Produce is an empty payload instead.
  Status ProduceTombstone(std::string_view topic, std::string_view key, uint64_t tag = 0) {
    return Produce(topic, key, std::string_view(), {}, tag);
  }

  // Serves delivery reports for up to `timeout`; returns the queued reports
  // (empty when a callback was given).
  std::vector<DeliveryReport> PollDeliveries(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // Learns `topic`'s partition leaders now (one metadata request, up to
  // `timeout`), so the first Produce to it is not held for the client's
  // next periodic topic scan (up to a second after a quiet start).
  Status PrepareTopic(std::string_view topic, std::chrono::milliseconds timeout);

  // Waits up to `timeout` for every message to be delivered. Non-OK names
  // how many messages failed since the previous Flush and how many are still
  // undelivered. Queued reports remain available to PollDeliveries().
  Status Flush(std::chrono::milliseconds timeout);

  // Messages handed to Produce and not yet reported.
  int64_t InFlight() const;

 private:
  struct Impl;
  explicit Producer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- consumer

// A consumed message: a view into the Batch that owns it (no copies). Valid
// while its Batch lives.
class Message {
 public:
  std::string_view topic() const;
  int32_t partition() const;
  int64_t offset() const;
  std::string_view key() const;
  std::string_view value() const;
  // True for a tombstone (null value); value() is then empty.
  bool is_tombstone() const;
  // Producer/broker timestamp in epoch ms, -1 when absent.
  int64_t timestamp_ms() const;
  // The last header named `key`, if any.
  std::optional<std::string_view> header(std::string_view key) const;
  std::vector<HeaderView> headers() const;

 private:
  friend class Consumer;
  friend class Batch;
  explicit Message(const void* raw) : raw_(raw) {}
  const void* raw_;  // rd_kafka_message_t, owned by the Batch
};

// Messages from one PollBatch, in the order received (per partition: offset
// order). Move-only; releases the librdkafka buffers on destruction, which
// must happen before its Consumer is destroyed.
class Batch {
 public:
  Batch() = default;
  ~Batch();
  Batch(Batch&& other) noexcept;
  Batch& operator=(Batch&& other) noexcept;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  size_t size() const { return messages_.size(); }
  bool empty() const { return messages_.empty(); }
  const Message& operator[](size_t i) const { return messages_[i]; }
  std::span<const Message> messages() const { return messages_; }
  auto begin() const { return messages_.begin(); }
  auto end() const { return messages_.end(); }
  // Releases the messages `drop` selects (e.g. of partitions revoked since
  // the poll), keeping the others in order. Returns how many were dropped.
  size_t EraseIf(const std::function<bool(const Message&)>& drop);

 private:
  friend class Consumer;
  void Release();
  std::vector<Message> messages_;
};

struct RebalanceEvent {
  enum class Kind {
    kAssigned,  // partitions added to this member
    kRevoked,   // about to be taken away: finish and StoreOffsets now
    kLost,      // already taken away (session lost): do not commit
  };
  Kind kind;
  std::vector<TopicPartition> partitions;  // the increment, not the whole assignment
};

class Consumer {
 public:
  // Called on the polling thread. On kRevoked the adapter commits the stored
  // offsets of the revoked partitions right after the callback returns.
  using RebalanceCallback = std::function<void(const RebalanceEvent&)>;

  // Consumer group member with eager `roundrobin` assignment by default:
  // librdkafka 2.0.2 (Debian 12) can abort in its cooperative-sticky
  // assignor when a member closes during a rebalance (#4312, fixed in
  // 2.2.1). `partition.assignment.strategy=cooperative-sticky` in the
  // properties still works (incremental assign/unassign), with that
  // caveat; eager and cooperative members cannot share a group, so
  // switching needs a full stop of the group, not a rolling restart.
  // enable.auto.offset.store=false and enable.auto.commit=false (both
  // overridable through properties), auto.offset.reset=earliest.
  static StatusOr<std::unique_ptr<Consumer>> Create(const KafkaOptions& options,
                                                    const std::string& group_id,
                                                    RebalanceCallback on_rebalance = nullptr);
  ~Consumer();  // Close()s if needed
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  Status Subscribe(const std::vector<std::string>& topics);

  // Up to `max_messages`, waiting at most `timeout` for the first one and
  // then taking only what is already fetched. Empty batch on timeout.
  // Transient broker errors are logged and counted; fatal ones are returned.
  StatusOr<Batch> PollBatch(size_t max_messages, std::chrono::milliseconds timeout);

  // Marks messages as processed: the next commit covers offset+1 of the
  // highest message per partition. Messages of partitions no longer assigned
  // are skipped (their new owner re-reads them).
  Status StoreOffsets(std::span<const Message> messages);
  Status StoreOffsets(const Batch& batch) { return StoreOffsets(batch.messages()); }

  // Commits stored offsets. OK when there is nothing new to commit.
  Status Commit(bool sync = true);

  // Group-committed offsets (next offset to read; -1001 when none).
  StatusOr<std::map<TopicPartition, int64_t>> Committed(
      const std::vector<TopicPartition>& partitions, std::chrono::milliseconds timeout);

  // Current assignment of this member.
  StatusOr<std::vector<TopicPartition>> Assignment();

  // Messages behind the high watermark over the assignment, from cached
  // fetch watermarks (no network call); also sets the lag gauge. Partitions
  // that have not returned a message yet are not counted (position unknown).
  int64_t Lag();

  // The partition's high watermark as the last fetch response gave it
  // (cached, no network call): every message below it had been appended
  // before this call. -1 when nothing was fetched from it yet.
  int64_t CachedHighWatermark(const std::string& topic, int32_t partition);

  // Stops fetching from every assigned partition (rd_kafka_pause), also from
  // partitions assigned while paused, until Resume(). PollBatch then returns
  // no messages but still serves rebalances and keeps the member within
  // max.poll.interval.ms: backpressure while downstream is unavailable.
  // Fetching resumes at the position after the last message returned.
  Status Pause();
  Status Resume();
  bool paused() const;

  // Leaves the group (revoke callback + commit of stored offsets). Idempotent.
  Status Close();

 private:
  struct Impl;
  explicit Consumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- offsets

// Asks partition leaders for offsets on connections of its own. A group
// consumer's connections carry its long-polling fetches, and a broker
// answers one connection's requests in order, so a ListOffsets sent there
// waits behind a fetch.wait.max.ms each time. Thread-safe.
class OffsetReader {
 public:
  static StatusOr<std::unique_ptr<OffsetReader>> Create(const KafkaOptions& options);
  ~OffsetReader();
  OffsetReader(const OffsetReader&) = delete;
  OffsetReader& operator=(const OffsetReader&) = delete;

  enum class Which { kEarliest, kLatest };
  // One ListOffsets per leader, in parallel. kLatest gives the high
  // watermark: every message appended before the call lies below it.
  StatusOr<std::map<TopicPartition, int64_t>> Offsets(const std::vector<TopicPartition>& partitions,
                                                      Which which,
                                                      std::chrono::milliseconds timeout);

  // The number of partitions of `topic` in the cluster's metadata.
  StatusOr<int32_t> PartitionCount(const std::string& topic, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  explicit OffsetReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- admin

struct TopicSpec {
  std::string name;
  int partitions = 1;
  int replication_factor = -1;  // -1: the broker default
};

// Creates topics on a real cluster; topics that already exist are fine.
// (librdkafka's mock cluster does not implement CreateTopics: use
// seg::testing::MockKafkaCluster::CreateTopic there.)
Status CreateTopics(const KafkaOptions& options, const std::vector<TopicSpec>& topics,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace seg::kafka
