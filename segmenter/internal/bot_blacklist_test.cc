#include "segmenter/bot_blacklist.h"

#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>

#include "common/clock.h"

namespace seg::segmenter {
namespace {

using Decision = BotBlacklist::Decision;

// Default options with one change.
template <typename F>
BotBlacklist::Options With(F mutate) {
  BotBlacklist::Options options;
  mutate(options);
  return options;
}

class BotBlacklistTest : public ::testing::Test {
 protected:
  std::unique_ptr<BotBlacklist> Make(BotBlacklist::Options options = {}) {
    if (options.capacity_bytes == BotBlacklist::Options{}.capacity_bytes) {
      options.capacity_bytes = 1 << 20;  // small tables keep tests fast
    }
    auto blacklist = BotBlacklist::Create(options, &clock_);
    EXPECT_TRUE(blacklist.ok()) << blacklist.status();
    return std::move(blacklist).value();
  }
  FakeClock clock_;
};

TEST_F(BotBlacklistTest, TriggersExactlyAtThresholdNotBefore) {
  auto bl = Make();  // 300 events per 60 s
  EXPECT_EQ(bl->OnNotice("bot", 299), Decision::kProcess);
  EXPECT_FALSE(bl->IsBlacklisted("bot"));
  EXPECT_EQ(bl->OnNotice("bot", 1), Decision::kNewlyBlacklisted);
  EXPECT_TRUE(bl->IsBlacklisted("bot"));

  auto one_by_one = Make();
  for (int i = 1; i < 300; ++i) {
    ASSERT_EQ(one_by_one->OnNotice("bot", 1), Decision::kProcess) << i;
    clock_.AdvanceMs(100);  // 30 s in all: inside one window
  }
  EXPECT_EQ(one_by_one->OnNotice("bot", 1), Decision::kNewlyBlacklisted);
}

TEST_F(BotBlacklistTest, NewlyBlacklistedOnlyOnceThenSkipsAndCounts) {
  auto bl = Make();
  ASSERT_EQ(bl->OnNotice("bot", 500), Decision::kNewlyBlacklisted);
  for (int i = 0; i < 100; ++i) {
    clock_.AdvanceMs(1'000);
    EXPECT_EQ(bl->OnNotice("bot", 50), Decision::kBlacklisted);
  }
  EXPECT_EQ(bl->stats().newly_blacklisted, 1u);
  EXPECT_EQ(bl->stats().skipped_notices, 100u);
  EXPECT_EQ(bl->OnNotice("human", 1), Decision::kProcess);
}

TEST_F(BotBlacklistTest, ExpiresAfterBlacklistTime) {
  auto bl = Make(With([](auto& o) { o.blacklist_ms = 3'600'000; }));
  ASSERT_EQ(bl->OnNotice("bot", 300), Decision::kNewlyBlacklisted);
  clock_.AdvanceMs(3'600'000 - 1);
  EXPECT_EQ(bl->OnNotice("bot", 1), Decision::kBlacklisted);
  clock_.AdvanceMs(1);
  EXPECT_FALSE(bl->IsBlacklisted("bot"));
  EXPECT_EQ(bl->OnNotice("bot", 1), Decision::kProcess);  // fresh window
  EXPECT_EQ(bl->OnNotice("bot", 298), Decision::kProcess);
  // Still a bot: blacklisted again, and the caller told again.
  EXPECT_EQ(bl->OnNotice("bot", 1), Decision::kNewlyBlacklisted);
}

TEST_F(BotBlacklistTest, WindowForgetsOldEvents) {
  auto bl = Make();
  EXPECT_EQ(bl->OnNotice("u", 200), Decision::kProcess);
  clock_.AdvanceMs(60'000);
  EXPECT_EQ(bl->OnNotice("u", 200), Decision::kProcess);
  clock_.AdvanceMs(60'000);
  EXPECT_EQ(bl->OnNotice("u", 299), Decision::kProcess);
}

TEST_F(BotBlacklistTest, BurstAcrossSubWindowBoundaryIsCaught) {
  auto bl = Make();
  clock_.AdvanceMs(9'900);
  EXPECT_EQ(bl->OnNotice("bot", 150), Decision::kProcess);
  clock_.AdvanceMs(200);  // next 10 s sub-window
  EXPECT_EQ(bl->OnNotice("bot", 150), Decision::kNewlyBlacklisted);
}

TEST_F(BotBlacklistTest, QuietUserIsNeverBlacklisted) {
  auto bl = Make();
  std::mt19937_64 rng(3);
  // Reader A: bursts of 299 events every 61 s: never 300 within 60 s.
  // Reader B: 4 events per second, steady (240 per minute).
  // Reader C: random bursts, at most 299 events in any 60 s.
  std::deque<std::pair<int64_t, int64_t>> c_recent;  // (second, events)
  int64_t c_sum = 0;
  for (int64_t s = 0; s < 3 * 3600; ++s) {
    {
      SCOPED_TRACE(s);
      if (s % 61 == 0) {
        ASSERT_EQ(bl->OnNotice("reader-a", 299), Decision::kProcess);
      }
      ASSERT_EQ(bl->OnNotice("reader-b", 4), Decision::kProcess);
      while (!c_recent.empty() && c_recent.front().first <= s - 60) {
        c_sum -= c_recent.front().second;
        c_recent.pop_front();
      }
      const int64_t burst = std::min<int64_t>(rng() % 40, 299 - c_sum);
      if (burst > 0) {
        c_recent.emplace_back(s, burst);
        c_sum += burst;
        ASSERT_EQ(bl->OnNotice("reader-c", static_cast<uint32_t>(burst)), Decision::kProcess);
      }
    }
    clock_.AdvanceMs(1'000);
  }
  EXPECT_EQ(bl->stats().newly_blacklisted, 0u);
}

TEST_F(BotBlacklistTest, MemoryBoundedUnderFloodOfDistinctUsers) {
  auto bl = Make(With([](auto& o) { o.capacity_bytes = 64 << 10; }));
  ASSERT_EQ(bl->capacity(), 2048u);
  const size_t bytes = bl->memory_bytes();
  int bot_newly = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    EXPECT_EQ(bl->OnNotice("flood-" + std::to_string(i), 1), Decision::kProcess);
    if (i % 1000 == 999) {
      // A bot among the flood: 10 events per notice, 30 notices reach 300.
      if (bl->OnNotice("bot", 10) == Decision::kNewlyBlacklisted) ++bot_newly;
    }
    if (i % 1000 == 0) clock_.AdvanceMs(1);
    ASSERT_LE(bl->size(), bl->capacity());
  }
  EXPECT_EQ(bl->memory_bytes(), bytes);
  EXPECT_EQ(bot_newly, 1);
  EXPECT_TRUE(bl->IsBlacklisted("bot"));
  EXPECT_GT(bl->stats().evictions, 900'000u);
  EXPECT_EQ(bl->stats().evicted_blacklisted, 0u);
}

TEST_F(BotBlacklistTest, HugeEventCountSaturatesAndBlacklists) {
  auto bl = Make();
  EXPECT_EQ(bl->OnNotice("bot", 0xFFFFFFFFu), Decision::kNewlyBlacklisted);
  EXPECT_EQ(bl->OnNotice("zero", 0), Decision::kProcess);
}

TEST_F(BotBlacklistTest, CreateRejectsBadOptions) {
  EXPECT_FALSE(BotBlacklist::Create({}, nullptr).ok());
  EXPECT_FALSE(BotBlacklist::Create(With([](auto& o) { o.window_ms = 5; }), &clock_).ok());
  EXPECT_FALSE(BotBlacklist::Create(With([](auto& o) { o.threshold_events = 0; }), &clock_).ok());
  EXPECT_FALSE(
      BotBlacklist::Create(With([](auto& o) { o.threshold_events = 6 * 65535 + 1; }), &clock_)
          .ok());
  EXPECT_FALSE(BotBlacklist::Create(With([](auto& o) { o.blacklist_ms = 0; }), &clock_).ok());
  EXPECT_FALSE(BotBlacklist::Create(With([](auto& o) { o.capacity_bytes = 127; }), &clock_).ok());
  EXPECT_TRUE(BotBlacklist::Create(With([](auto& o) { o.capacity_bytes = 128; }), &clock_).ok());
}

TEST_F(BotBlacklistTest, ExportsCounters) {
  BotBlacklist::Options options;
  options.metrics_labels = {{"test", "BotBlacklistExportsCounters"}};
  auto bl = Make(options);
  ASSERT_EQ(bl->OnNotice("bot", 300), Decision::kNewlyBlacklisted);
  ASSERT_EQ(bl->OnNotice("bot", 1), Decision::kBlacklisted);
  bl->FlushMetrics();
  EXPECT_DOUBLE_EQ(
      metrics::GetCounter("seg_segmenter_bot_blacklisted_total", "", options.metrics_labels)
          .Value(),
      1);
  EXPECT_DOUBLE_EQ(
      metrics::GetCounter("seg_segmenter_bot_skipped_notices_total", "", options.metrics_labels)
          .Value(),
      1);
}

}  // namespace
}  // namespace seg::segmenter
