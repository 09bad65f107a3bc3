// Publishes the ingest watermark (common/ingest_watermark.h) of the events
// partitions this ingester owns. Every interval, on a thread of its own, it
// notes the time t and then asks the partition leaders for their high
// watermarks H (every event appended before t is below H); once the
// pipeline has stored every message below H (OnStored), the partition's
// watermark becomes t. The leaders are asked on connections of the
// publisher's own (kafka::OffsetReader), so no fetch of the group consumer
// delays the answer. Each statement is a fact whoever owns the partition
// later, so rebalances need no coordination: a new owner simply goes on.
#ifndef SEG_INGEST_INTERNAL_WATERMARK_H_
#define SEG_INGEST_INTERNAL_WATERMARK_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/kafka.h"
#include "common/metrics.h"
#include "common/status.h"
#include "store/store.h"

namespace seg::ingest {

struct WatermarkOptions {
  std::string topic;          // the events topic
  std::string table = "due";  // tables.due.name
  std::string family = "d";   // tables.due.family
  int64_t interval_ms = 200;
};

class WatermarkPublisher {
 public:
  // `consumer` (for its assignment and committed offsets) and `store`
  // must outlive the publisher.
  static StatusOr<std::unique_ptr<WatermarkPublisher>> Create(WatermarkOptions options,
                                                              const kafka::KafkaOptions& kafka,
                                                              kafka::Consumer* consumer,
                                                              store::Store* store,
                                                              const Clock* clock);
  ~WatermarkPublisher() { Stop(); }

  void Start();  // the background thread: RunOnce() every interval
  void Stop();

  // Every message of `partition` below `next_offset` is stored. Cheap.
  void OnStored(int32_t partition, int64_t next_offset);

 private:
  // One round (the thread's body): sample, advance, publish what moved.
  Status RunOnce();

  WatermarkPublisher(WatermarkOptions options, std::unique_ptr<kafka::OffsetReader> offsets,
                     kafka::Consumer* consumer, store::Store* store, const Clock* clock);

  struct Sample {
    int64_t at_ms;
    int64_t high;
  };
  struct PartitionState {
    int64_t base = -1;    // first offset this group had to read (committed or low)
    int64_t stored = -1;  // OnStored's next_offset
    std::deque<Sample> samples;
    int64_t published = -1;
  };

  WatermarkOptions options_;
  std::unique_ptr<kafka::OffsetReader> offsets_;
  kafka::Consumer* consumer_;
  store::Store* store_;
  const Clock* clock_;
  int64_t partition_count_ = -1;
  int rounds_ = 0;

  std::mutex mu_;
  std::map<int32_t, PartitionState> partitions_;

  std::mutex wake_mu_;
  std::condition_variable_any wake_;
  std::jthread thread_;

  metrics::Gauge lag_seconds_;
  metrics::Counter failures_;
};

}  // namespace seg::ingest

#endif  // SEG_INGEST_INTERNAL_WATERMARK_H_
