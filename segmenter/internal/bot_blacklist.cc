// BotBlacklistTable: see segmenter/bot_blacklist.h for the design.
#include <algorithm>
#include <cstring>
#include <string>

#include "segmenter/internal/bot_blacklist_table.h"

namespace seg::segmenter {

StatusOr<std::unique_ptr<BotBlacklist>> BotBlacklist::Create(const Options& options, Clock* clock) {
  using internal::BotBlacklistTable;
  if (clock == nullptr) return InvalidArgumentError("bot blacklist: null clock");
  if (options.window_ms < kSubWindows) {
    return InvalidArgumentError("bot blacklist: window_ms " + std::to_string(options.window_ms) +
                                " below " + std::to_string(kSubWindows));
  }
  if (options.window_ms / kSubWindows > int64_t{1} << 40) {
    return InvalidArgumentError("bot blacklist: window_ms too large");
  }
  if (options.threshold_events == 0 ||
      options.threshold_events > kSubWindows * BotBlacklistTable::kMaxSubCount) {
    return InvalidArgumentError(
        "bot blacklist: threshold_events " + std::to_string(options.threshold_events) +
        " outside [1, " + std::to_string(kSubWindows * BotBlacklistTable::kMaxSubCount) + "]");
  }
  if (options.blacklist_ms <= 0 || options.blacklist_ms > (int64_t{1} << 50)) {
    return InvalidArgumentError("bot blacklist: blacklist_ms " +
                                std::to_string(options.blacklist_ms) + " must be positive");
  }
  if (options.capacity_bytes < BotBlacklistTable::kBucketBytes) {
    return InvalidArgumentError("bot blacklist: capacity_bytes " +
                                std::to_string(options.capacity_bytes) +
                                " holds no bucket (minimum 128)");
  }
  return std::unique_ptr<BotBlacklist>(std::make_unique<BotBlacklistTable>(options, clock));
}

namespace internal {

BotBlacklistTable::BotBlacklistTable(const Options& options, Clock* clock)
    : sub_window_ms_(options.window_ms / kSubWindows),
      threshold_(options.threshold_events),
      blacklist_ms_(options.blacklist_ms),
      seed_(options.hash_seed),
      num_buckets_(options.capacity_bytes / kBucketBytes),
      clock_(clock),
      base_ms_(clock->MonotonicUs() / 1000),
      buckets_(new Bucket[num_buckets_]),
      blacklisted_counter_(metrics::GetCounter("seg_segmenter_bot_blacklisted_total",
                                               "Users newly blacklisted as bots",
                                               options.metrics_labels)),
      skipped_counter_(metrics::GetCounter("seg_segmenter_bot_skipped_notices_total",
                                           "Change notices skipped: user blacklisted",
                                           options.metrics_labels)),
      evictions_counter_(metrics::GetCounter("seg_segmenter_bot_evictions_total",
                                             "Bot window entries replaced by another user",
                                             options.metrics_labels)) {
  std::memset(static_cast<void*>(buckets_.get()), 0, num_buckets_ * kBucketBytes);
}

BotBlacklistTable::~BotBlacklistTable() { FlushMetrics(); }

void BotBlacklistTable::FlushMetrics() {
  blacklisted_counter_.Flush();
  skipped_counter_.Flush();
  evictions_counter_.Flush();
  ops_since_flush_ = 0;
}

inline void BotBlacklistTable::CountOp() {
  if (++ops_since_flush_ >= kFlushEvery) FlushMetrics();
}

int64_t BotBlacklistTable::NowRelMs() const {
  return std::max<int64_t>(0, clock_->MonotonicUs() / 1000 - base_ms_);
}

uint32_t BotBlacklistTable::Estimate(const Entry& e, uint32_t tick) {
  if (tick < e.tick) tick = e.tick;
  const uint32_t age = tick - e.tick;
  if (age >= static_cast<uint32_t>(kSubWindows)) return 0;
  // Sub-windows e.tick, e.tick - 1, ..., tick - 5 are still inside the window.
  uint32_t sum = 0;
  uint32_t idx = e.tick % kSubWindows;
  for (uint32_t k = age; k < static_cast<uint32_t>(kSubWindows); ++k) {
    sum += e.counts[idx];
    idx = idx == 0 ? kSubWindows - 1 : idx - 1;
  }
  return sum;
}

BotBlacklistTable::Entry* BotBlacklistTable::Insert(Bucket& b, uint64_t key, uint32_t tick,
                                                    int64_t now_ms) {
  Entry* victim = nullptr;
  for (Entry& e : b.entries) {
    if (e.key == 0) {
      victim = &e;
      break;
    }
  }
  if (victim == nullptr) {
    // Quietest unblocked entry (smallest estimate, then oldest tick); when
    // every entry is blocked, the one whose blacklisting ends first.
    auto rank = [&](const Entry& e) {
      const bool blocked = Blocked(e, now_ms);
      return std::make_tuple(blocked ? 1 : 0, blocked ? e.blocked_until_ms : 0,
                             blocked ? 0u : Estimate(e, tick), e.tick);
    };
    victim = &b.entries[0];
    for (Entry& e : b.entries) {
      if (rank(e) < rank(*victim)) victim = &e;
    }
    ++stats_.evictions;
    evictions_counter_.Add();
    if (Blocked(*victim, now_ms)) ++stats_.evicted_blacklisted;
  } else {
    ++size_;
  }
  std::memset(static_cast<void*>(victim), 0, sizeof(Entry));
  victim->key = key;
  victim->tick = tick;
  return victim;
}

BotBlacklist::Decision BotBlacklistTable::OnNoticeHash(uint64_t hash, uint32_t event_count) {
  CountOp();
  ++stats_.notices;
  const int64_t now_ms = NowRelMs();
  const uint32_t tick = static_cast<uint32_t>(now_ms / sub_window_ms_);
  const uint64_t key = KeyOf(hash);
  Bucket& b = BucketOf(hash);
  Entry* entry = nullptr;
  for (Entry& e : b.entries) {
    if (e.key == key) {
      entry = &e;
      break;
    }
  }
  if (entry == nullptr) {
    entry = Insert(b, key, tick, now_ms);
  } else if (entry->blocked_until_ms != 0) {
    if (entry->blocked_until_ms > now_ms) {
      ++stats_.skipped_notices;
      skipped_counter_.Add();
      return Decision::kBlacklisted;
    }
    // Expired: start over with an empty window.
    std::memset(static_cast<void*>(entry), 0, sizeof(Entry));
    entry->key = key;
    entry->tick = tick;
  }
  // Slide the ring to `tick`, clearing sub-windows that left the window.
  if (tick > entry->tick) {
    const uint32_t clear = std::min<uint32_t>(tick - entry->tick, kSubWindows);
    for (uint32_t s = tick - clear + 1; s != tick + 1; ++s) entry->counts[s % kSubWindows] = 0;
    entry->tick = tick;
  }
  uint16_t& slot = entry->counts[tick % kSubWindows];
  slot = static_cast<uint16_t>(
      std::min<uint32_t>(kMaxSubCount, uint32_t{slot} + std::min(event_count, kMaxSubCount)));
  if (Estimate(*entry, tick) >= threshold_) {
    entry->blocked_until_ms = now_ms + blacklist_ms_;
    ++stats_.newly_blacklisted;
    blacklisted_counter_.Add();
    return Decision::kNewlyBlacklisted;
  }
  return Decision::kProcess;
}

bool BotBlacklistTable::IsBlacklistedHash(uint64_t hash) const {
  const uint64_t key = KeyOf(hash);
  const int64_t now_ms = NowRelMs();
  for (const Entry& e : BucketOf(hash).entries) {
    if (e.key == key) return Blocked(e, now_ms);
  }
  return false;
}

int64_t BotBlacklistTable::EstimateForTest(uint64_t hash) const {
  const uint64_t key = KeyOf(hash);
  const uint32_t tick = static_cast<uint32_t>(NowRelMs() / sub_window_ms_);
  for (const Entry& e : BucketOf(hash).entries) {
    if (e.key == key) return Estimate(e, tick);
  }
  return -1;
}

}  // namespace internal
}  // namespace seg::segmenter
