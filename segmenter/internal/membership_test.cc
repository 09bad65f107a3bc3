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

}  // namespace
}  // namespace seg::segmenter
