#include "segmenter/internal/read_policy.h"

#include <gtest/gtest.h>

#include <random>

namespace seg::segmenter {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

NodeOptions Options(NodeOptions::ReadPolicy policy, int64_t delay, int64_t min, int64_t max) {
  NodeOptions o;
  o.read_policy = policy;
  o.read_delay_ms = delay;
  o.read_delay_min_ms = min;
  o.read_delay_max_ms = max;
  return o;
}

TEST(FollowUpRuleTest, LeadingEdgeFollowsTheLastReadByTheFixedDelay) {
  FollowUpRule rule(Options(NodeOptions::ReadPolicy::kLeadingEdge, 150, 50, 500));
  EXPECT_EQ(rule.window_ms(), 150);
  // Whatever the notice's age.
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 40, kNow - 5), kNow + 110);
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 40, kNow - 5'000), kNow + 110);
}

TEST(FollowUpRuleTest, AdaptiveWaitsOutTheRestOfAYoungNoticesBudget) {
  FollowUpRule rule(Options(NodeOptions::ReadPolicy::kAdaptive, 200, 50, 500));
  EXPECT_EQ(rule.window_ms(), 200);  // a read up to 200 ms ago: in a burst
  // Acknowledged 30 ms ago (a usual transport lag), user read 100 ms ago:
  // due 200 ms after the ack, i.e. in 170 ms.
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 100, kNow - 30), kNow + 170);
  // The same notice 10 ms after the read waits as long: the wait follows the
  // notice, not the read (leading edge would wait 190 ms or 100).
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 10, kNow - 30), kNow + 170);
}

TEST(FollowUpRuleTest, AdaptiveReadsALateNoticeAfterTheMinimum) {
  FollowUpRule rule(Options(NodeOptions::ReadPolicy::kAdaptive, 200, 50, 500));
  // Acknowledged 1 s ago (transport stall, node behind): its budget is spent.
  // Not before the last read + min, so a backlog still coalesces a little.
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 10, kNow - 1'000), kNow + 40);
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 300, kNow - 1'000), kNow - 250);  // i.e. at once
}

TEST(FollowUpRuleTest, AdaptiveClockSkewStaysWithinTheBounds) {
  FollowUpRule rule(Options(NodeOptions::ReadPolicy::kAdaptive, 200, 50, 500));
  // An ingester's clock 10 s ahead: taken as acknowledged now, and never
  // later than the last read + max.
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 10, kNow + 10'000), kNow + 200);
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 400, kNow + 10'000), kNow + 100);
  // No acknowledgement time (0): as if acknowledged now.
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 10, 0), kNow + 200);
}

// Any notice, any read: the follow-up lies within [read + min, read + max].
TEST(FollowUpRuleTest, AdaptiveDueIsAlwaysWithinItsBounds) {
  FollowUpRule rule(Options(NodeOptions::ReadPolicy::kAdaptive, 150, 20, 400));
  std::mt19937_64 rng(18);
  std::uniform_int_distribution<int64_t> since_read(0, 149), age(-5'000, 60'000);
  for (int i = 0; i < 100'000; ++i) {
    const int64_t last_read = kNow - since_read(rng);
    const int64_t acked = kNow - age(rng);
    const int64_t due = rule.FollowUpDueMs(kNow, last_read, acked);
    ASSERT_GE(due, last_read + 20);
    ASSERT_LE(due, last_read + 400);
    // Never later than the budget from the ack allows, unless the minimum says so.
    ASSERT_TRUE(due <= std::min(acked, kNow) + 150 || due == last_read + 20);
  }
}

TEST(FollowUpRuleTest, AdaptiveMaxBelowMinIsTakenAsMin) {
  FollowUpRule rule(Options(NodeOptions::ReadPolicy::kAdaptive, 200, 100, 50));
  EXPECT_EQ(rule.FollowUpDueMs(kNow, kNow - 10, kNow), kNow + 90);
}

}  // namespace
}  // namespace seg::segmenter
