// Clock::SetRealOffsetMs and the clock.offset_ms key (clock-skew tests).
#include "common/clock.h"

#include <gtest/gtest.h>

#include <chrono>

#include "common/config.h"
#include "tests/harness/status_matchers.h"

namespace seg {
namespace {

int64_t SystemMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

class ClockOffsetTest : public ::testing::Test {
 protected:
  void TearDown() override { Clock::SetRealOffsetMs(0); }
};

TEST_F(ClockOffsetTest, OffsetMovesNowButNotTheMonotonicClock) {
  const int64_t mono_before = Clock::Real()->MonotonicUs();
  Clock::SetRealOffsetMs(-2000);
  const int64_t before = SystemMs();
  const int64_t now = Clock::Real()->NowMs();
  const int64_t after = SystemMs();
  EXPECT_GE(now, before - 2000);
  EXPECT_LE(now, after - 2000);
  // Monotonic time never jumps back with the offset.
  EXPECT_GE(Clock::Real()->MonotonicUs(), mono_before);
  Clock::SetRealOffsetMs(0);
  EXPECT_GE(Clock::Real()->NowMs(), after);
}

TEST_F(ClockOffsetTest, ConfigKeyAppliesTheOffset) {
  auto config = Config::FromString("clock:\n  offset_ms: 2500\n", "t.yaml");
  SEG_ASSERT_OK(config);
  SEG_ASSERT_OK(ApplyClockOffset(*config));
  EXPECT_EQ(Clock::RealOffsetMs(), 2500);
  SEG_EXPECT_OK(config->CheckNoUnknownKeys());
  const int64_t now = Clock::Real()->NowMs();
  EXPECT_GE(now - SystemMs(), 2000);
}

TEST_F(ClockOffsetTest, NoKeyMeansNoOffset) {
  Clock::SetRealOffsetMs(123);
  auto config = Config::FromString("", "t.yaml");
  SEG_ASSERT_OK(config);
  SEG_ASSERT_OK(ApplyClockOffset(*config));
  EXPECT_EQ(Clock::RealOffsetMs(), 0);
}

TEST_F(ClockOffsetTest, OffsetBeyondADayIsAnError) {
  auto config = Config::FromString("clock:\n  offset_ms: -86400001\n", "t.yaml");
  SEG_ASSERT_OK(config);
  Status s = ApplyClockOffset(*config);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("clock.offset_ms"), std::string::npos) << s;
  EXPECT_EQ(Clock::RealOffsetMs(), 0);
}

}  // namespace
}  // namespace seg
