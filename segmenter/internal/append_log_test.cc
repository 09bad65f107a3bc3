#include "segmenter/internal/append_log.h"

#include <gtest/gtest.h>

#include <random>

namespace seg::segmenter {
namespace {

TEST(AppendLogTest, AnOffsetIsAppendedByTheFirstWatermarkAboveIt) {
  AppendLog log;
  log.Record(0, 10, 100);  // offsets 0..9 known appended at 100
  log.Record(0, 25, 200);
  log.Record(0, 40, 300);
  EXPECT_EQ(log.AppendedBy(0, 0, 999), 100);
  EXPECT_EQ(log.AppendedBy(0, 9, 999), 100);
  EXPECT_EQ(log.AppendedBy(0, 10, 999), 200);  // the watermark is exclusive
  EXPECT_EQ(log.AppendedBy(0, 39, 999), 300);
  // Above every watermark: the time the message was received.
  EXPECT_EQ(log.AppendedBy(0, 40, 999), 999);
  // Another partition's watermarks say nothing about this one.
  EXPECT_EQ(log.AppendedBy(1, 0, 555), 555);
  // Never later than the receipt.
  EXPECT_EQ(log.AppendedBy(0, 39, 250), 250);
}

TEST(AppendLogTest, LowerOrRepeatedWatermarksKeepTheEarlierTime) {
  AppendLog log;
  log.Record(0, 10, 100);
  log.Record(0, 10, 150);
  log.Record(0, 5, 160);   // an older cached value
  log.Record(0, -1, 170);  // unknown
  EXPECT_EQ(log.AppendedBy(0, 9, 999), 100);
  EXPECT_EQ(log.AppendedBy(0, 10, 999), 999);
}

TEST(AppendLogTest, OldSamplesGoFirstAndGiveALaterTickNeverAnEarlierOne) {
  AppendLog log;
  for (int64_t i = 1; i <= static_cast<int64_t>(AppendLog::kMaxSamples) + 10; ++i) {
    log.Record(0, i * 10, i);
  }
  // Offset 5 was known appended at tick 1, whose sample is gone: the oldest
  // kept (tick 11) answers, later but still true.
  EXPECT_EQ(log.AppendedBy(0, 5, 1'000'000), 11);
}

TEST(AppendLogTest, ForgottenPartitionStartsOver) {
  AppendLog log;
  log.Record(3, 10, 100);
  log.Forget(3);
  EXPECT_EQ(log.AppendedBy(3, 5, 700), 700);
}

// Property: against a ground truth of append ticks, the answer is never
// earlier than the real append (that would be an unsafe skip), whatever the
// sampling, and with ages beyond the history.
TEST(AppendLogTest, NeverEarlierThanTheRealAppend) {
  std::mt19937_64 rng(7);
  AppendLog log;
  std::vector<int64_t> appended_at;  // offset -> time
  int64_t now = 1000;
  for (int step = 0; step < 200'000; ++step) {
    now += static_cast<int64_t>(rng() % 3);
    const int appends = static_cast<int>(rng() % 4);
    for (int a = 0; a < appends; ++a) appended_at.push_back(now);
    // The cached watermark lags the log end by a random amount (fetch delay).
    const int64_t end = static_cast<int64_t>(appended_at.size());
    const int64_t high = std::max<int64_t>(0, end - static_cast<int64_t>(rng() % 50));
    if (rng() % 3 == 0) log.Record(0, high, now);
    if (end > 0 && rng() % 5 == 0) {
      const int64_t offset = static_cast<int64_t>(rng() % static_cast<uint64_t>(end));
      ASSERT_GE(log.AppendedBy(0, offset, now), appended_at[offset]) << offset;
    }
  }
}

}  // namespace
}  // namespace seg::segmenter
