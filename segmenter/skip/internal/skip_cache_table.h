// SkipCacheTable: the open-addressing implementation behind SkipCache (see
// segmenter/skip/skip_cache.h for the idea, layout and safety argument). Exposes
// the hashed entry points so tests can place users in chosen buckets.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "common/metrics.h"
#include "segmenter/skip/skip_cache.h"

namespace seg::segmenter::internal {

// The 64-bit user hash shared by SkipCache and BotBlacklist.
uint64_t HashUserId(std::string_view user_id, uint64_t seed);

// Batches counter increments so the hot path does not touch an atomic
// double per call: pending counts are pushed every kFlushEvery operations.
class PendingCounter {
 public:
  explicit PendingCounter(metrics::Counter counter) : counter_(counter) {}
  void Add(uint64_t n = 1) { pending_ += n; }
  void Flush() {
    if (pending_ != 0) counter_.Inc(static_cast<double>(pending_));
    pending_ = 0;
  }

 private:
  metrics::Counter counter_;
  uint64_t pending_ = 0;
};

class SkipCacheTable final : public SkipCache {
 public:
  static constexpr int kSlotsPerBucket = 6;
  static constexpr size_t kBucketBytes = 64;
  // Read starts are kept if at most this much older than the first one seen.
  static constexpr int64_t kEpochSlackMs = 3'600'000;
  static constexpr int64_t kMaxTimeMs = int64_t{1} << 62;
  static constexpr uint64_t kFlushEvery = 4096;

  // `options` must have passed SkipCache::Create's validation.
  explicit SkipCacheTable(const Options& options);
  ~SkipCacheTable() override;

  bool ShouldSkip(std::string_view user_id, int64_t acked_at_ms) override {
    return ShouldSkipHash(HashUserId(user_id, seed_), acked_at_ms);
  }
  void RecordRead(std::string_view user_id, int64_t read_started_ms) override {
    RecordReadHash(HashUserId(user_id, seed_), read_started_ms);
  }
  void Forget(std::string_view user_id) override { ForgetHash(HashUserId(user_id, seed_)); }
  int64_t LastRead(std::string_view user_id) const override {
    return LookupHash(HashUserId(user_id, seed_));
  }
  size_t capacity() const override { return num_buckets_ * kSlotsPerBucket; }
  size_t size() const override { return size_; }
  size_t memory_bytes() const override { return num_buckets_ * kBucketBytes; }
  Stats stats() const override { return stats_; }
  void FlushMetrics() override;

  bool ShouldSkipHash(uint64_t hash, int64_t acked_at_ms);
  void RecordReadHash(uint64_t hash, int64_t read_started_ms);
  void ForgetHash(uint64_t hash);
  size_t num_buckets() const { return num_buckets_; }
  size_t BucketOf(uint64_t hash) const {
    return static_cast<size_t>((static_cast<unsigned __int128>(hash) * num_buckets_) >> 64);
  }
  // The stored read start of `hash`, or -1 when absent.
  int64_t LookupHash(uint64_t hash) const;

 private:
  struct alignas(64) Bucket {
    uint32_t fp_hi[kSlotsPerBucket];  // bits 16..47 of the hash
    uint16_t fp_lo[kSlotsPerBucket];  // bits 0..15 of the hash
    uint32_t ts[kSlotsPerBucket];     // read start - epoch_ms_, ms; 0 = empty
    uint32_t unused;
  };
  static_assert(sizeof(Bucket) == kBucketBytes);

  // Index of `hash`'s slot in `b`, or -1.
  static int Find(const Bucket& b, uint64_t hash);
  void Rebase(int64_t read_started_ms);
  void CountOp();

  const int64_t skew_margin_ms_;
  const uint64_t seed_;
  const size_t num_buckets_;
  std::unique_ptr<Bucket[]> buckets_;
  bool epoch_set_ = false;
  int64_t epoch_ms_ = 0;
  size_t size_ = 0;
  Stats stats_;
  uint64_t ops_since_flush_ = 0;
  PendingCounter hits_counter_;
  PendingCounter misses_counter_;
  PendingCounter evictions_counter_;
};

}  // namespace seg::segmenter::internal
