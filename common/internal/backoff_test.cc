#include "common/backoff.h"

#include <gtest/gtest.h>

#include <vector>

namespace seg {
namespace {

std::vector<int64_t> Delays(Backoff b, int n) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(b.NextDelayMs());
  return out;
}

TEST(BackoffTest, DelaysStayWithinHalfCeilingToCeilingAndCap) {
  Backoff b(BackoffOptions{100, 1000}, 7);
  const int64_t ceilings[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (int64_t c : ceilings) {
    int64_t d = b.NextDelayMs();
    EXPECT_GE(d, c / 2);
    EXPECT_LE(d, c);
  }
  EXPECT_EQ(b.attempts(), 7);
  b.Reset();
  EXPECT_EQ(b.attempts(), 0);
  EXPECT_LE(b.NextDelayMs(), 100);
}

TEST(BackoffTest, SameSeedSameDelays) {
  BackoffOptions o{1000, 1 << 20};
  EXPECT_EQ(Delays(Backoff(o, 42), 10), Delays(Backoff(o, 42), 10));
}

TEST(BackoffTest, DefaultSeedsDifferBetweenInstances) {
  // Clients failing together must not retry in lockstep.
  EXPECT_NE(Backoff::DefaultSeed(), Backoff::DefaultSeed());
  BackoffOptions o{1000, 1 << 20};
  EXPECT_NE(Delays(Backoff(o), 10), Delays(Backoff(o), 10));
}

}  // namespace
}  // namespace seg
