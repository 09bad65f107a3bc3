// BotBlacklistTable: the fixed-size table behind BotBlacklist (see
// segmenter/skip/bot_blacklist.h for the idea and layout). Exposes the hashed entry
// point for tests. Thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "segmenter/skip/bot_blacklist.h"
#include "segmenter/skip/internal/skip_cache_table.h"

namespace seg::segmenter::internal {

class BotBlacklistTable final : public BotBlacklist {
 public:
  static constexpr int kEntriesPerBucket = 4;
  static constexpr size_t kBucketBytes = 128;
  static constexpr uint32_t kMaxSubCount = 0xFFFF;
  static constexpr uint64_t kFlushEvery = 4096;

  // `options` must have passed BotBlacklist::Create's validation.
  BotBlacklistTable(const BotOptions& options, Clock* clock);
  ~BotBlacklistTable() override;

  Decision OnNotice(std::string_view user_id, uint32_t event_count) override {
    return OnNoticeHash(HashUserId(user_id, seed_), event_count);
  }
  Decision ObserveRow(std::string_view user_id, std::span<const EventView> events,
                      int64_t now_ms) override {
    return ObserveRowHash(HashUserId(user_id, seed_), events, now_ms);
  }
  bool IsBlacklisted(std::string_view user_id) const override {
    return IsBlacklistedHash(HashUserId(user_id, seed_));
  }
  size_t capacity() const override { return num_buckets_ * kEntriesPerBucket; }
  size_t size() const override { return size_; }
  size_t memory_bytes() const override { return num_buckets_ * kBucketBytes; }
  Stats stats() const override { return stats_; }
  void FlushMetrics() override;

  Decision OnNoticeHash(uint64_t hash, uint32_t event_count);
  Decision ObserveRowHash(uint64_t hash, std::span<const EventView> events, int64_t now_ms);
  bool IsBlacklistedHash(uint64_t hash) const;
  // The window estimate of `hash` now, or -1 when not tracked (tests).
  int64_t EstimateForTest(uint64_t hash) const;

 private:
  struct Entry {
    uint64_t key;                  // full hash, 0 = empty
    uint32_t blocked_until_s;      // seconds after base_ms_, rounded up; 0 = not blacklisted
    uint32_t tick;                 // newest sub-window number
    uint32_t streak;               // 1 + sub-window where the rate streak began; 0 = none
    uint16_t counts[kSubWindows];  // counts[s % kSubWindows] for s in (tick-6, tick]
  };
  static_assert(sizeof(Entry) == 32);
  struct alignas(64) Bucket {
    Entry entries[kEntriesPerBucket];
  };
  static_assert(sizeof(Bucket) == kBucketBytes);

  int64_t NowRelMs() const;
  Bucket& BucketOf(uint64_t hash) const {
    return buckets_[(static_cast<unsigned __int128>(hash) * num_buckets_) >> 64];
  }
  static uint64_t KeyOf(uint64_t hash) { return hash == 0 ? 1 : hash; }
  // Sum of the sub-windows (tick - 6, tick] still held by `e` at `tick`.
  static uint32_t Estimate(const Entry& e, uint32_t tick);
  static bool Blocked(const Entry& e, int64_t now_ms) {
    return e.blocked_until_s != 0 && int64_t{e.blocked_until_s} * 1000 > now_ms;
  }
  Entry* Find(uint64_t hash) const;
  Entry* Insert(Bucket& b, uint64_t key, uint32_t tick, int64_t now_ms);
  // Marks `e` blacklisted from now_ms and counts it.
  void Block(Entry& e, int64_t now_ms);
  enum class RowVerdict { kHuman, kUserAgents, kIps, kCrawl };
  RowVerdict AnalyseRow(std::span<const EventView> events, int64_t now_ms);
  void CountOp();

  const BotOptions options_;
  const int64_t sub_window_ms_;
  const uint32_t threshold_;
  const uint32_t sustain_ticks_;
  const int64_t blacklist_ms_;
  const uint64_t seed_;
  const size_t num_buckets_;
  Clock* const clock_;
  const int64_t base_ms_;
  std::unique_ptr<Bucket[]> buckets_;
  size_t size_ = 0;
  Stats stats_;
  uint64_t ops_since_flush_ = 0;
  // ObserveRow's scratch: event times of the analysed window, then gaps.
  std::vector<int64_t> gaps_;
  PendingCounter blacklisted_counter_;
  PendingCounter skipped_counter_;
  PendingCounter evictions_counter_;
  PendingCounter by_agents_counter_;
  PendingCounter by_ips_counter_;
  PendingCounter by_crawl_counter_;
};

}  // namespace seg::segmenter::internal
