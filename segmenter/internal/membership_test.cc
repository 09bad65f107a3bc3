#include "segmenter/internal/membership.h"

#include <gtest/gtest.h>

#include "segmenter/segmenter.h"

namespace seg::segmenter {
namespace {

TEST(MembershipTest, DayOfIsUtcCalendarDay) {
  EXPECT_EQ(DayOf(0), 19700101);
  EXPECT_EQ(DayOf(1700000000000), 20231114);  // 2023-11-14T22:13:20Z
  EXPECT_EQ(DayOf(1709251199000), 20240229);  // leap day, last second
  EXPECT_EQ(DayOf(1709251200000), 20240301);
}

TEST(MembershipTest, EnteredExitedAgainstPreviousState) {
  SegmentState prev;
  prev.add_segments("cats");
  prev.add_segments("woman");
  MembershipChange c = DiffMembership(prev, {"mortgage", "woman"}, 20261123);
  EXPECT_EQ(c.entered, std::vector<std::string>{"mortgage"});
  EXPECT_EQ(c.exited, std::vector<std::string>{"cats"});
  EXPECT_TRUE(c.changed());
  EXPECT_FALSE(DiffMembership(prev, {"cats", "woman"}, 20261123).changed());
}

TEST(MembershipTest, AlreadyCountedSegmentDayIsNotCountedAgain) {
  SegmentState prev;
  prev.add_segments("cats");
  prev.add_counted("cats:20261123");
  MembershipChange same_day = DiffMembership(prev, {"cats", "woman"}, 20261123);
  EXPECT_EQ(same_day.to_count, std::vector<std::string>{"woman"});
  MembershipChange next_day = DiffMembership(prev, {"cats"}, 20261124);
  EXPECT_EQ(next_day.to_count, std::vector<std::string>{"cats"});
}

TEST(MembershipTest, NextStateKeepsOnlyTodayAndYesterday) {
  SegmentState prev;
  prev.add_counted("cats:20261130");  // yesterday of 2026-12-01 (month boundary)
  prev.add_counted("cats:20261129");  // too old
  MembershipChange c = DiffMembership(prev, {"cats"}, 20261201);
  SegmentState next = NextState(prev, {"cats"}, c, 20261201);
  ASSERT_EQ(next.counted_size(), 2);
  EXPECT_EQ(next.counted(0), "cats:20261130");
  EXPECT_EQ(next.counted(1), "cats:20261201");
  EXPECT_EQ(next.segments_size(), 1);
}

// Redis lost the sketches: every mark is counted again, also of a segment
// the user has left since (that day's sketch had them), and today's and
// yesterday's marks stay in the state.
TEST(MembershipTest, VoidMarksAreCountedAgainAndKept) {
  SegmentState prev;
  prev.add_segments("cats");
  prev.add_counted("cats:20261201");
  prev.add_counted("dogs:20261201");  // left dogs earlier today
  prev.add_counted("cats:20261130");
  prev.add_counted("cats:20261128");  // older: counted again, not kept
  prev.add_counted("garbage");
  std::vector<std::string> marks = TakeVoidMarks(&prev);
  EXPECT_EQ(prev.counted_size(), 0);
  ASSERT_EQ(marks.size(), 5u);
  MembershipChange c = DiffMembership(prev, {"cats"}, 20261201);
  EXPECT_EQ(c.to_count, std::vector<std::string>{"cats"});
  SegmentState next = NextState(prev, {"cats"}, c, 20261201);
  std::vector<std::pair<std::string, int32_t>> adds;
  RecountVoidMarks(marks, 20261201, &next, &adds);
  EXPECT_EQ(adds,
            (std::vector<std::pair<std::string, int32_t>>{
                {"cats", 20261201}, {"dogs", 20261201}, {"cats", 20261130}, {"cats", 20261128}}));
  EXPECT_EQ(std::vector<std::string>(next.counted().begin(), next.counted().end()),
            (std::vector<std::string>{"cats:20261201", "dogs:20261201", "cats:20261130"}));
}

TEST(MembershipTest, FailedScriptKeepsItsPreviousSegmentsOnly) {
  SegmentState prev;
  prev.add_segments("cats");
  prev.add_segments("woman");
  // "cats"' script failed now: it stays; "woman"'s script ran and said no.
  EXPECT_EQ(KeepFailedSegments(prev, {"mortgage"}, {"cats", "kittens"}),
            (std::vector<std::string>{"cats", "mortgage"}));
  EXPECT_EQ(KeepFailedSegments(prev, {"mortgage"}, {}), std::vector<std::string>{"mortgage"});
  // A failure never makes an entry: "kittens" was not held before.
  EXPECT_EQ(KeepFailedSegments(SegmentState(), {}, {"kittens"}), std::vector<std::string>{});
}

TEST(MembershipTest, SeqIsStrictlyIncreasingWithGaps) {
  EXPECT_EQ(NextSeq(0, 1'700'000'000'000), 1'700'000'000'000'000);
  EXPECT_EQ(NextSeq(1'700'000'000'000'000, 1'700'000'000'000), 1'700'000'000'000'001);
  // A clock step back cannot make it go down.
  EXPECT_EQ(NextSeq(1'700'000'000'005'000, 1'700'000'000'000), 1'700'000'000'005'001);
}

TEST(MembershipTest, DueRowKeysSortByPartitionThenTime) {
  const std::string a = DueRowKey(3, 1'700'000'000'000, "zed");
  const std::string b = DueRowKey(3, 1'700'000'000'001, "abe");
  const std::string c = DueRowKey(4, 1, "abe");
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  EXPECT_LE(DueScanBound(3, 0), a);
  EXPECT_LT(a, DueScanBound(3, 1'700'000'000'001));
  EXPECT_LT(b, DueScanBound(3, 1'700'000'000'002));
  int32_t partition = 0;
  int64_t due = 0;
  std::string_view user;
  ASSERT_TRUE(ParseDueRowKey(a, &partition, &due, &user));
  EXPECT_EQ(partition, 3);
  EXPECT_EQ(due, 1'700'000'000'000);
  EXPECT_EQ(user, "zed");
  EXPECT_FALSE(ParseDueRowKey(DueScanBound(3, 5), &partition, &due, &user));
}

}  // namespace
}  // namespace seg::segmenter
