#include "segmenter/skip/skip_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "segmenter/skip/internal/skip_cache_table.h"
#include "tests/harness/status_matchers.h"

namespace seg::segmenter {
namespace {

using internal::SkipCacheTable;

SkipCache::Options CacheOptions(size_t capacity_bytes, int64_t skew_margin_ms) {
  SkipCache::Options options;
  options.capacity_bytes = capacity_bytes;
  options.skew_margin_ms = skew_margin_ms;
  return options;
}

std::unique_ptr<SkipCache> MakeCache(size_t capacity_bytes, int64_t skew_margin_ms) {
  SkipCache::Options options;
  options.capacity_bytes = capacity_bytes;
  options.skew_margin_ms = skew_margin_ms;
  auto cache = SkipCache::Create(options);
  SEG_EXPECT_OK(cache);
  return std::move(cache).value();
}

class SkipCacheTest : public ::testing::Test {
 protected:
  FakeClock clock_;
};

TEST_F(SkipCacheTest, BurstOfTwentyNoticesBeforeOneReadGivesOneSegmentation) {
  auto cache = MakeCache(1 << 20, /*skew_margin_ms=*/50);
  // A page load: 20 writes acknowledged within one second.
  const int64_t t0 = clock_.NowMs();
  std::vector<int64_t> acks;
  for (int i = 0; i < 20; ++i) acks.push_back(t0 + 50 * i);
  clock_.AdvanceMs(1500);  // the node reaches them with ~0.5-1.5 s of lag
  // The node's loop: skip rules, then read (start stamped before the
  // multi-get), then RecordRead after the read succeeded.
  int segmentations = 0;
  for (int64_t acked : acks) {
    if (cache->ShouldSkip("user-1", acked)) continue;
    const int64_t read_started = clock_.NowMs();
    clock_.AdvanceMs(3);  // multi-get + scripts
    ++segmentations;
    cache->RecordRead("user-1", read_started);
  }
  EXPECT_EQ(segmentations, 1);
  EXPECT_EQ(cache->stats().hits, 19u);
  EXPECT_EQ(cache->stats().misses, 1u);
}

TEST_F(SkipCacheTest, SkipsNoticeAcknowledgedBeforeLastRead) {
  auto cache = MakeCache(1 << 20, 50);
  cache->RecordRead("u", 10'000);
  EXPECT_TRUE(cache->ShouldSkip("u", 9'000));
  EXPECT_TRUE(cache->ShouldSkip("u", 9'949));
  EXPECT_FALSE(cache->ShouldSkip("other", 9'000));
}

TEST_F(SkipCacheTest, NeverSkipsWriteAcknowledgedAtOrAfterReadStartOrWithinMargin) {
  auto cache = MakeCache(1 << 20, 50);
  cache->RecordRead("u", 10'000);
  EXPECT_FALSE(cache->ShouldSkip("u", 10'001));  // after the read began
  EXPECT_FALSE(cache->ShouldSkip("u", 10'000));  // same millisecond: order unknown
  EXPECT_FALSE(cache->ShouldSkip("u", 9'960));   // within the skew margin
  EXPECT_FALSE(cache->ShouldSkip("u", 9'950));   // acked + margin == read start
  EXPECT_TRUE(cache->ShouldSkip("u", 9'949));    // acked + margin < read start
  EXPECT_FALSE(cache->ShouldSkip("u", std::numeric_limits<int64_t>::max()));

  auto exact = MakeCache(1 << 20, 0);
  exact->RecordRead("u", 10'000);
  EXPECT_FALSE(exact->ShouldSkip("u", 10'000));
  EXPECT_TRUE(exact->ShouldSkip("u", 9'999));
}

TEST_F(SkipCacheTest, NoticeDuringInFlightReadIsProcessed) {
  auto cache = MakeCache(1 << 20, 0);
  cache->RecordRead("u", 1'000);  // an earlier, finished read
  // Read #2 starts at 2'000; before it finishes a write acked at 2'005 is
  // consumed. It is checked against read #1 only, so it is processed.
  const int64_t read2_started = 2'000;
  EXPECT_FALSE(cache->ShouldSkip("u", 2'005));
  cache->RecordRead("u", read2_started);  // read #2 succeeded
  // The write of 2'005 may be missing from read #2: still not skipped.
  EXPECT_FALSE(cache->ShouldSkip("u", 2'005));
  EXPECT_TRUE(cache->ShouldSkip("u", 1'999));
}

TEST_F(SkipCacheTest, FailedReadRecordsNothing) {
  auto cache = MakeCache(1 << 20, 0);
  // Read started at 5'000 but failed: the caller does not call RecordRead.
  EXPECT_FALSE(cache->ShouldSkip("u", 4'000));
  EXPECT_FALSE(cache->ShouldSkip("u", 4'000));
}

TEST_F(SkipCacheTest, LateOlderReadDoesNotMoveTimestampBack) {
  auto cache = MakeCache(1 << 20, 0);
  cache->RecordRead("u", 2'000);
  cache->RecordRead("u", 1'000);  // an older read finishing late
  EXPECT_TRUE(cache->ShouldSkip("u", 1'500));
}

TEST_F(SkipCacheTest, IgnoresOutOfRangeReadTimes) {
  auto cache = MakeCache(1 << 20, 0);
  cache->RecordRead("u", 0);
  cache->RecordRead("u", -5);
  cache->RecordRead("u", std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(cache->ShouldSkip("u", std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(cache->size(), 0u);
  EXPECT_EQ(cache->stats().records_dropped, 3u);
}

TEST_F(SkipCacheTest, DistinctHashesAreNeverConfused) {
  // 4 MiB = 65536 buckets: (bucket, 48-bit fingerprint) determines the hash.
  SkipCacheTable table(CacheOptions(size_t{4} << 20, 0));
  ASSERT_EQ(table.num_buckets(), 65536u);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t h = rng();
    // Same low 48 bits (fingerprint), different top bits.
    const uint64_t same_fp = h ^ (uint64_t{1 + (rng() % 0xFFFF)} << 48);
    // Same bucket, different fingerprint.
    const uint64_t same_bucket = h ^ (uint64_t{1} << (rng() % 32));
    table.RecordReadHash(h, 1'000'000 + i);
    EXPECT_FALSE(table.ShouldSkipHash(same_fp, 0)) << std::hex << h << " " << same_fp;
    if (table.BucketOf(same_bucket) == table.BucketOf(h)) {
      EXPECT_FALSE(table.ShouldSkipHash(same_bucket, 0));
    }
    EXPECT_TRUE(table.ShouldSkipHash(h, 0));
  }
}

TEST_F(SkipCacheTest, FullBucketEvictsOldestReadAndEvictedUserMisses) {
  SkipCacheTable table(CacheOptions(64, 0));
  ASSERT_EQ(table.capacity(), 6u);
  for (int i = 0; i < 6; ++i) table.RecordRead("u" + std::to_string(i), 1'000 + i);
  EXPECT_EQ(table.size(), 6u);
  table.RecordRead("u6", 2'000);  // evicts u0 (oldest read)
  EXPECT_EQ(table.size(), 6u);
  EXPECT_EQ(table.stats().evictions, 1u);
  EXPECT_FALSE(table.ShouldSkip("u0", 0));  // a miss: extra work, never wrong
  EXPECT_TRUE(table.ShouldSkip("u6", 1'999));
  EXPECT_TRUE(table.ShouldSkip("u1", 1'000));
  // A read older than every resident is not stored.
  table.RecordRead("u7", 500);
  EXPECT_FALSE(table.ShouldSkip("u7", 0));
  EXPECT_EQ(table.stats().records_dropped, 1u);
}

TEST_F(SkipCacheTest, RebaseKeepsRecentEntriesAndDropsOldOnes) {
  auto cache = MakeCache(1 << 16, 0);
  const int64_t day = 86'400'000;
  const int64_t t = 1'700'000'000'000;
  cache->RecordRead("old", t);
  cache->RecordRead("recent", t + 40 * day);
  cache->RecordRead("now", t + 60 * day);  // beyond 2^32 ms from the epoch
  EXPECT_FALSE(cache->ShouldSkip("old", t - 1));
  EXPECT_TRUE(cache->ShouldSkip("recent", t + 40 * day - 1));
  EXPECT_FALSE(cache->ShouldSkip("recent", t + 40 * day));
  EXPECT_TRUE(cache->ShouldSkip("now", t + 60 * day - 1));
  EXPECT_EQ(cache->size(), 2u);
}

TEST_F(SkipCacheTest, CreateRejectsBadOptions) {
  EXPECT_FALSE(SkipCache::Create(CacheOptions(63, 50)).ok());
  EXPECT_FALSE(SkipCache::Create(CacheOptions(1 << 16, -1)).ok());
  SEG_EXPECT_OK(SkipCache::Create(CacheOptions(64, 50)));
}

TEST_F(SkipCacheTest, ExportsHitAndMissCounters) {
  SkipCache::Options options;
  options.capacity_bytes = 1 << 16;
  options.metrics_labels = {{"test", "ExportsHitAndMissCounters"}};
  auto cache = std::move(SkipCache::Create(options)).value();
  cache->RecordRead("u", 1'000'000);
  EXPECT_TRUE(cache->ShouldSkip("u", 1));
  EXPECT_FALSE(cache->ShouldSkip("u", 2'000'000));
  EXPECT_FALSE(cache->ShouldSkip("v", 1));
  cache->FlushMetrics();
  EXPECT_DOUBLE_EQ(
      metrics::GetCounter("seg_segmenter_skip_cache_hits_total", "", options.metrics_labels)
          .Value(),
      1);
  EXPECT_DOUBLE_EQ(
      metrics::GetCounter("seg_segmenter_skip_cache_misses_total", "", options.metrics_labels)
          .Value(),
      2);
}

// Many users, interleaved writes and batched reads, acknowledgement stamps
// off by up to the skew margin, a tiny table (evictions and users sharing
// buckets all the time). Checks against ground truth that a skipped notice's
// write was acknowledged strictly before the last successful read of that
// user began, and that after draining every user's last read covers all of
// its writes.
TEST_F(SkipCacheTest, RandomizedNeverSkipsUncoveredWrite) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    const int64_t margin = 20;
    const int kUsers = 500;
    SkipCacheTable table(CacheOptions(4 * 64, margin));
    ASSERT_EQ(table.capacity(), 24u);
    std::mt19937_64 rng(seed);
    struct Notice {
      int user;
      int64_t true_ack_ms;  // when the write really was acknowledged
      int64_t stamped_ms;   // acked_at_ms as stamped by another host's clock
      int64_t deliver_ms;   // when the node consumes it
    };
    std::deque<Notice> in_flight;  // ordered by deliver_ms (FIFO lag model)
    std::vector<int64_t> last_ack(kUsers, -1), last_read(kUsers, -1);
    int64_t now = 1'700'000'000'000;
    int64_t last_deliver = now;
    uint64_t skips = 0, reads = 0, notices = 0;
    auto run_batch = [&](int64_t batch_time) {
      // Read start stamped before the multi-get.
      std::vector<Notice> to_read;
      while (!in_flight.empty() && in_flight.front().deliver_ms <= batch_time) {
        const Notice n = in_flight.front();
        in_flight.pop_front();
        ++notices;
        if (table.ShouldSkip("user-" + std::to_string(n.user), n.stamped_ms)) {
          ++skips;
          ASSERT_LT(n.true_ack_ms, last_read[n.user]) << "skipped an uncovered write";
          continue;
        }
        to_read.push_back(n);
      }
      const int64_t read_started = batch_time;
      const bool read_fails = rng() % 20 == 0;
      if (read_fails) {  // redelivered to the next batch, nothing recorded
        for (auto it = to_read.rbegin(); it != to_read.rend(); ++it) in_flight.push_front(*it);
        return;
      }
      for (const Notice& n : to_read) {
        const int u = n.user;
        last_read[u] = std::max(last_read[u], read_started);
        table.RecordRead("user-" + std::to_string(u), read_started);
        ++reads;
      }
      ASSERT_LE(table.size(), table.capacity());
    };
    for (int step = 0; step < 40'000; ++step) {
      now += static_cast<int64_t>(rng() % 3);
      // Hot users (a few) and a long tail.
      const int user =
          rng() % 4 == 0 ? static_cast<int>(rng() % 8) : static_cast<int>(rng() % kUsers);
      const int64_t skew = static_cast<int64_t>(rng() % (2 * margin + 1)) - margin;
      last_ack[user] = now;
      const int64_t deliver = std::max(last_deliver, now + static_cast<int64_t>(rng() % 200));
      last_deliver = deliver;
      in_flight.push_back({user, now, now + skew, deliver});
      if (rng() % 10 == 0) run_batch(now);
      if (HasFatalFailure()) return;
    }
    for (int i = 0; !in_flight.empty() && i < 1000; ++i) {
      now += 100;
      run_batch(now);
      if (HasFatalFailure()) return;
    }
    ASSERT_TRUE(in_flight.empty());
    for (int u = 0; u < kUsers; ++u) {
      if (last_ack[u] >= 0) {
        EXPECT_LT(last_ack[u], last_read[u]) << "user " << u << " final state missed";
      }
    }
    EXPECT_GT(skips, 1000u);  // the cache does work despite the tiny table
    EXPECT_GT(table.stats().evictions, 1000u);
    EXPECT_EQ(table.memory_bytes(), 256u);
  }
}

}  // namespace
}  // namespace seg::segmenter
