// AppendLog: for each user-changes message, a point in this node's own
// order of events by which it was known to be appended. It makes the skip
// rule clock-free (skip_cache.h): a notice's write was acknowledged before
// the notice was appended, and the consumer learns "every message below
// offset H is appended" from the high watermark of each fetch response. A
// notice whose offset lies below a watermark the node read at tick t was
// appended, so its write acknowledged, before t; a read of the user that
// began at a later tick saw the write. No clock takes part: ticks come from
// one counter the node's thread advances at every watermark sample and
// every read start, so program order is the order of ticks, without ties.
//
// Record() keeps, per partition, samples (high watermark, tick) with the
// watermark strictly increasing; a sample dropped for age only makes a
// later tick the answer, which costs a skip, never a wrong one.
#ifndef SEG_SEGMENTER_INTERNAL_APPEND_LOG_H_
#define SEG_SEGMENTER_INTERNAL_APPEND_LOG_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>

namespace seg::segmenter {

class AppendLog {
 public:
  static constexpr size_t kMaxSamples = 4096;  // per partition: 64 KiB

  // At `tick` every message of `partition` below offset `high` was known appended.
  void Record(int32_t partition, int64_t high, int64_t tick);

  // A tick by which the message at `offset` was appended: that of the first
  // sample whose watermark is above it, else `received_tick` (a tick taken
  // after the message was received).
  int64_t AppendedBy(int32_t partition, int64_t offset, int64_t received_tick) const;

  void Forget(int32_t partition) { samples_.erase(partition); }

 private:
  struct Sample {
    int64_t high;
    int64_t tick;
  };
  std::map<int32_t, std::deque<Sample>> samples_;
};

}  // namespace seg::segmenter

#endif  // SEG_SEGMENTER_INTERNAL_APPEND_LOG_H_
