// SkipCacheTable: see segmenter/skip/skip_cache.h for the design.
#include <algorithm>
#include <cstring>
#include <limits>

#include "common/hash.h"
#include "segmenter/skip/internal/skip_cache_table.h"

namespace seg::segmenter {

StatusOr<std::unique_ptr<SkipCache>> SkipCache::Create(const Options& options) {
  using internal::SkipCacheTable;
  if (options.capacity_bytes < SkipCacheTable::kBucketBytes) {
    return InvalidArgumentError("skip cache: capacity_bytes " +
                                std::to_string(options.capacity_bytes) +
                                " holds no bucket (minimum 64)");
  }
  if (options.skew_margin_ms < 0 || options.skew_margin_ms > 86'400'000) {
    return InvalidArgumentError("skip cache: skew_margin_ms " +
                                std::to_string(options.skew_margin_ms) + " outside [0, 86400000]");
  }
  return std::unique_ptr<SkipCache>(std::make_unique<SkipCacheTable>(options));
}

namespace internal {

uint64_t HashUserId(std::string_view user_id, uint64_t seed) {
  return MurmurHash64A(user_id, seed);
}

namespace {
metrics::Counter MakeCounter(const char* name, const char* help, const metrics::Labels& labels) {
  return metrics::GetCounter(name, help, labels);
}
}  // namespace

SkipCacheTable::SkipCacheTable(const Options& options)
    : skew_margin_ms_(options.skew_margin_ms),
      seed_(options.hash_seed),
      num_buckets_(options.capacity_bytes / kBucketBytes),
      buckets_(new Bucket[num_buckets_]),
      hits_counter_(MakeCounter("seg_segmenter_skip_cache_hits_total",
                                "Change notices skipped: already covered by the last read",
                                options.metrics_labels)),
      misses_counter_(MakeCounter("seg_segmenter_skip_cache_misses_total",
                                  "Change notices not covered by a remembered read",
                                  options.metrics_labels)),
      evictions_counter_(MakeCounter("seg_segmenter_skip_cache_evictions_total",
                                     "Skip cache entries replaced by another user",
                                     options.metrics_labels)) {
  std::memset(static_cast<void*>(buckets_.get()), 0, num_buckets_ * kBucketBytes);
}

SkipCacheTable::~SkipCacheTable() { FlushMetrics(); }

void SkipCacheTable::FlushMetrics() {
  hits_counter_.Flush();
  misses_counter_.Flush();
  evictions_counter_.Flush();
  ops_since_flush_ = 0;
}

inline void SkipCacheTable::CountOp() {
  if (++ops_since_flush_ >= kFlushEvery) FlushMetrics();
}

int SkipCacheTable::Find(const Bucket& b, uint64_t hash) {
  const uint32_t hi = static_cast<uint32_t>(hash >> 16);
  const uint16_t lo = static_cast<uint16_t>(hash);
  for (int i = 0; i < kSlotsPerBucket; ++i) {
    if (b.ts[i] != 0 && b.fp_hi[i] == hi && b.fp_lo[i] == lo) return i;
  }
  return -1;
}

bool SkipCacheTable::ShouldSkipHash(uint64_t hash, int64_t acked_at_ms) {
  CountOp();
  if (epoch_set_) {
    const Bucket& b = buckets_[BucketOf(hash)];
    const int i = Find(b, hash);
    if (i >= 0) {
      // read_started < 2^62 and margin <= 1 day: no overflow.
      const int64_t read_started_ms = epoch_ms_ + b.ts[i];
      if (acked_at_ms < read_started_ms - skew_margin_ms_) {
        ++stats_.hits;
        hits_counter_.Add();
        return true;
      }
      ++stats_.misses;
      misses_counter_.Add();
      return false;
    }
  }
  ++stats_.misses;
  ++stats_.misses_absent;
  misses_counter_.Add();
  return false;
}

void SkipCacheTable::RecordReadHash(uint64_t hash, int64_t read_started_ms) {
  CountOp();
  ++stats_.records;
  if (read_started_ms < 1 || read_started_ms >= kMaxTimeMs) {
    ++stats_.records_dropped;
    return;
  }
  if (!epoch_set_) {
    // Slot value 0 means empty, so every stored time is > epoch_ms_.
    epoch_ms_ = read_started_ms - kEpochSlackMs;
    epoch_set_ = true;
  }
  int64_t rel = read_started_ms - epoch_ms_;
  if (rel < 1) {  // older than the epoch: cannot be stored; a later miss
    ++stats_.records_dropped;
    return;
  }
  if (rel > std::numeric_limits<uint32_t>::max()) {
    Rebase(read_started_ms);
    rel = read_started_ms - epoch_ms_;
  }
  const uint32_t ts = static_cast<uint32_t>(rel);
  Bucket& b = buckets_[BucketOf(hash)];
  int i = Find(b, hash);
  if (i >= 0) {
    b.ts[i] = std::max(b.ts[i], ts);  // a late older read never moves it back
    return;
  }
  // Empty slot, else the slot with the oldest read start.
  int victim = 0;
  for (int j = 0; j < kSlotsPerBucket; ++j) {
    if (b.ts[j] < b.ts[victim]) victim = j;
  }
  if (b.ts[victim] == 0) {
    ++size_;
  } else if (b.ts[victim] < ts) {
    ++stats_.evictions;
    evictions_counter_.Add();
  } else {  // older than every resident: the least useful entry is this one
    ++stats_.records_dropped;
    return;
  }
  b.fp_hi[victim] = static_cast<uint32_t>(hash >> 16);
  b.fp_lo[victim] = static_cast<uint16_t>(hash);
  b.ts[victim] = ts;
}

void SkipCacheTable::ForgetHash(uint64_t hash) {
  Bucket& b = buckets_[BucketOf(hash)];
  const int i = Find(b, hash);
  if (i < 0) return;
  b.ts[i] = 0;
  --size_;
}

void SkipCacheTable::Rebase(int64_t read_started_ms) {
  // Keep the last 2^31 ms (24.8 days) before the new read; drop older ones.
  const int64_t new_epoch = read_started_ms - (int64_t{1} << 31);
  const int64_t delta = new_epoch - epoch_ms_;
  for (size_t k = 0; k < num_buckets_; ++k) {
    Bucket& b = buckets_[k];
    for (int j = 0; j < kSlotsPerBucket; ++j) {
      if (b.ts[j] == 0) continue;
      if (static_cast<int64_t>(b.ts[j]) <= delta) {
        b.ts[j] = 0;
        --size_;
      } else {
        b.ts[j] = static_cast<uint32_t>(b.ts[j] - delta);
      }
    }
  }
  epoch_ms_ = new_epoch;
}

int64_t SkipCacheTable::LookupHash(uint64_t hash) const {
  if (!epoch_set_) return -1;
  const Bucket& b = buckets_[BucketOf(hash)];
  const int i = Find(b, hash);
  return i < 0 ? -1 : epoch_ms_ + b.ts[i];
}

}  // namespace internal
}  // namespace seg::segmenter
