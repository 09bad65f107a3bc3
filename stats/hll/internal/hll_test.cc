// Unit and accuracy tests of seg::stats::HyperLogLog (no Redis needed; the
// comparison with a real redis-server is in hll_redis_test.cc).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "stats/hll/hll.h"
#include "stats/hll/internal/hll_internal.h"
#include "stats/hll/internal/hll_sim.h"
#include "stats/hll/internal/intersection.h"
#include "tests/harness/status_matchers.h"

namespace seg::stats {
namespace {

std::string SparseString(std::initializer_list<uint8_t> ops) {
  std::string s("HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80", 16);
  for (uint8_t op : ops) s.push_back(static_cast<char>(op));
  return s;
}

std::vector<uint8_t> RandomRegisters(uint64_t seed, int max_value) {
  sim::SplitMix64 rng(seed);
  std::vector<uint8_t> regs(kHllRegisters);
  for (auto& r : regs) r = static_cast<uint8_t>(rng.Next() % (max_value + 1));
  return regs;
}

TEST(HllDecodeTest, EmptySparseIsOneXzeroOf16384) {
  auto h = HyperLogLog::FromRedisString(SparseString({0x7f, 0xff}));
  SEG_ASSERT_OK(h);
  EXPECT_EQ(h->Estimate(), 0u);
  EXPECT_EQ(*h, HyperLogLog());
}

TEST(HllDecodeTest, DecodesTheWorkedSparseExample) {
  // XZERO:1000 VAL:2,1 ZERO:19 VAL:3,2 XZERO:15362
  auto h = HyperLogLog::FromRedisString(SparseString({0x43, 0xE7, 0x84, 0x12, 0x89, 0x7C, 0x01}));
  SEG_ASSERT_OK(h);
  auto regs = h->registers();
  for (int i = 0; i < kHllRegisters; ++i) {
    const int want = i == 1000 ? 2 : (i == 1020 || i == 1021) ? 3 : 0;
    ASSERT_EQ(regs[i], want) << "register " << i;
  }
  EXPECT_EQ(h->Estimate(), 3u);
}

TEST(HllDecodeTest, RejectsMalformedStrings) {
  EXPECT_FALSE(HyperLogLog::FromRedisString("").ok());
  EXPECT_FALSE(HyperLogLog::FromRedisString("HYLX\x01\0\0\0\0\0\0\0\0\0\0\0").ok());
  // Sparse covering 16383 or 16385 registers, truncated XZERO, unknown encoding.
  EXPECT_FALSE(HyperLogLog::FromRedisString(SparseString({0x7f, 0xfe})).ok());
  EXPECT_FALSE(HyperLogLog::FromRedisString(SparseString({0x7f, 0xff, 0x00})).ok());
  EXPECT_FALSE(HyperLogLog::FromRedisString(SparseString({0x7f})).ok());
  std::string bad = SparseString({0x7f, 0xff});
  bad[4] = 2;
  EXPECT_FALSE(HyperLogLog::FromRedisString(bad).ok());
  // Dense strings must be exactly 12,304 bytes.
  std::string dense = HyperLogLog().ToRedisDenseString();
  ASSERT_EQ(dense.size(), kHllDenseBytes);
  SEG_EXPECT_OK(HyperLogLog::FromRedisString(dense));
  EXPECT_FALSE(HyperLogLog::FromRedisString(dense.substr(0, dense.size() - 1)).ok());
  EXPECT_FALSE(HyperLogLog::FromRedisString(dense + "x").ok());
}

TEST(HllDecodeTest, DenseBitLayoutIsLittleEndianBitwise) {
  std::vector<uint8_t> regs(kHllRegisters, 0);
  regs[0] = 0x01;
  regs[1] = 0x3f;  // bits 6..11: byte 0 bits 6-7, byte 1 bits 0-3
  regs[16383] = 0x2a;
  auto h = HyperLogLog::FromRegisters(regs);
  SEG_ASSERT_OK(h);
  const std::string s = h->ToRedisDenseString();
  EXPECT_EQ(s.substr(0, 5), std::string("HYLL\0", 5));
  EXPECT_EQ(static_cast<uint8_t>(s[15]) & 0x80, 0x80);  // cached count marked stale
  EXPECT_EQ(static_cast<uint8_t>(s[16]), 0xC1);
  EXPECT_EQ(static_cast<uint8_t>(s[17]), 0x0F);
  EXPECT_EQ(static_cast<uint8_t>(s[kHllDenseBytes - 1]), 0x2a << 2);
}

TEST(HllDecodeTest, DenseAndSparseRoundTrip) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    auto regs = RandomRegisters(seed, seed % 2 ? 63 : 32);
    auto h = HyperLogLog::FromRegisters(regs);
    SEG_ASSERT_OK(h);
    auto dense = HyperLogLog::FromRedisString(h->ToRedisDenseString());
    SEG_ASSERT_OK(dense);
    EXPECT_EQ(*dense, *h);
    const std::string sparse = internal::EncodeSparse(regs);
    if (seed % 2) continue;  // values above 32 have no sparse form
    ASSERT_FALSE(sparse.empty());
    auto back = HyperLogLog::FromRedisString(sparse);
    SEG_ASSERT_OK(back);
    EXPECT_EQ(*back, *h);
  }
}

// The SIMD merge straight from packed registers equals unpack-then-max,
// register by register, including the last group (read from a padded copy)
// and a packed buffer that ends exactly where the registers do.
TEST(HllDecodeTest, MaxDenseIntoEqualsUnpackThenMax) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const auto into = RandomRegisters(1000 + seed, 63);
    const auto other = RandomRegisters(seed, seed % 3 == 0 ? 0 : 63);
    std::vector<uint8_t> packed(kHllRegisters * 6 / 8);  // no slack after the end
    internal::PackDense(other.data(), packed.data());
    std::vector<uint8_t> fast = into, portable = into, expected = into;
    internal::MaxDenseInto(packed.data(), fast.data());
    internal::MaxDenseIntoPortable(packed.data(), portable.data());
    for (int i = 0; i < kHllRegisters; ++i) expected[i] = std::max(into[i], other[i]);
    ASSERT_EQ(fast, expected) << "seed " << seed;
    ASSERT_EQ(portable, expected) << "seed " << seed;
  }
}

TEST(HllHashTest, IndexIsLow14BitsAndRankCountsTrailingZerosPlusOne) {
  EXPECT_EQ(internal::RegisterIndex((uint64_t{1} << 14) | 5), 5);
  EXPECT_EQ(internal::RegisterRank((uint64_t{1} << 14) | 5), 1);
  EXPECT_EQ(internal::RegisterRank((uint64_t{1} << 17) | 5), 4);
  EXPECT_EQ(internal::RegisterRank(uint64_t{1} << 63), 50);
  EXPECT_EQ(internal::RegisterRank(5), 51);  // all 50 rank bits zero
  HyperLogLog h;
  EXPECT_TRUE(h.AddHash((uint64_t{1} << 16) | 7));
  EXPECT_FALSE(h.AddHash((uint64_t{1} << 15) | 7));  // lower rank: no change
  EXPECT_EQ(h.registers()[7], 3);
}

TEST(HllEstimateTest, SmallCountsAreNearlyExact) {
  sim::SplitMix64 rng(42);
  HyperLogLog h;
  int n = 0;
  for (int target : {1, 2, 10, 100, 1000}) {
    while (n < target) {
      h.AddHash(rng.Next());
      ++n;
    }
    const double est = static_cast<double>(h.Estimate());
    EXPECT_NEAR(est, n, std::max(1.0, 0.02 * n)) << "n=" << n;
  }
}

TEST(HllEstimateTest, MergeEqualsSketchOfUnion) {
  sim::SplitMix64 rng(7);
  HyperLogLog a, b, both;
  for (int i = 0; i < 50000; ++i) {
    const uint64_t x = rng.Next();
    (i % 3 == 0 ? a : b).AddHash(x);
    if (i % 5 == 0) a.AddHash(x);
    both.AddHash(x);
  }
  HyperLogLog merged = a;
  merged.Merge(b);
  EXPECT_EQ(merged, both);
  const HyperLogLog* parts[] = {&a, &b};
  EXPECT_EQ(EstimateUnion(parts).value, static_cast<double>(both.Estimate()));
}

TEST(HllEstimateTest, HistogramFormulaMatchesPlainHarmonicMeanForLargeN) {
  // Far from both ends sigma and tau vanish and Ertl's estimator is the raw
  // HyperLogLog estimate alpha_inf m^2 / sum 2^-r: a cross-check of the loop.
  sim::SplitMix64 rng(3);
  HyperLogLog h;
  for (int i = 0; i < 2'000'000; ++i) h.AddHash(rng.Next());
  double sum = 0;
  for (uint8_t r : h.registers()) sum += std::ldexp(1.0, -r);
  const double raw = internal::kAlphaInf * kHllRegisters * kHllRegisters / sum;
  EXPECT_NEAR(internal::ErtlEstimate(internal::Histogram(h.registers())), raw, 1e-6 * raw);
}

TEST(HllIntersectionTest, EmptySetGivesExactZero) {
  sim::SplitMix64 rng(1);
  HyperLogLog a, empty;
  for (int i = 0; i < 1000; ++i) a.AddHash(rng.Next());
  const IntersectionEstimate e = EstimateIntersection(a, empty);
  EXPECT_EQ(e.value, 0);
  EXPECT_EQ(e.ci95_high, 0);
  EXPECT_FALSE(e.too_uncertain);
}

TEST(HllIntersectionTest, IdenticalSetsGiveTheirSize) {
  sim::SplitMix64 rng(2);
  HyperLogLog a;
  for (int i = 0; i < 100000; ++i) a.AddHash(rng.Next());
  const IntersectionEstimate e = EstimateIntersection(a, a);
  EXPECT_NEAR(e.value, 100000, 3000);
  EXPECT_LE(e.ci95_low, 100000);
  EXPECT_GE(e.ci95_high, 100000);
  EXPECT_FALSE(e.too_uncertain) << e.note;
  EXPECT_EQ(e.method, "joint_mle");
}

TEST(HllIntersectionTest, OneSharedUserIsDistinguishedFromNone) {
  // Two one-user sketches with the same register and rank are ~m times more
  // likely under "shared" than under "two users colliding": the lower bound is > 0.
  HyperLogLog a, b, c;
  a.Add("user-1");
  b.Add("user-1");
  c.Add("user-2");
  const IntersectionEstimate same = EstimateIntersection(a, b);
  EXPECT_NEAR(same.value, 1.0, 0.01);
  EXPECT_GT(same.ci95_low, 0.0);
  EXPECT_LT(same.ci95_high, 10.0);
  const IntersectionEstimate different = EstimateIntersection(a, c);
  EXPECT_LT(different.value, 0.01);
  EXPECT_EQ(different.ci95_low, 0.0);
}

TEST(HllIntersectionTest, DisjointSetsAreFlaggedWithLowerBoundZero) {
  auto s = sim::MakeScenario({200000, 200000}, 0, 0, 11);
  const HyperLogLog a = sim::SketchOf(s.sets[0]), b = sim::SketchOf(s.sets[1]);
  const IntersectionEstimate e = EstimateIntersection(a, b);
  EXPECT_EQ(e.ci95_low, 0);
  EXPECT_TRUE(e.too_uncertain);
  EXPECT_NE(e.note.find("too uncertain"), std::string::npos) << e.note;
  EXPECT_LT(e.ci95_high, 0.05 * 200000);  // still informative: "fewer than ~x users"
}

TEST(HllIntersectionTest, JointMleFindsTheLikelihoodMaximum) {
  auto s = sim::MakeScenario({300000, 100000}, 20000, 0, 5);
  const HyperLogLog a = sim::SketchOf(s.sets[0]), b = sim::SketchOf(s.sets[1]);
  const auto r = internal::JointMle(a.registers(), b.registers());
  const auto h = internal::BuildJointHistograms(a.registers(), b.registers());
  const double best = internal::JointLogLikelihood(h, r.la, r.lb, r.lx);
  for (double da : {-0.01, 0.0, 0.01}) {
    for (double db : {-0.01, 0.0, 0.01}) {
      for (double dx : {-0.02, 0.0, 0.02}) {
        EXPECT_LE(
            internal::JointLogLikelihood(h, r.la * (1 + da), r.lb * (1 + db), r.lx * (1 + dx)),
            best + 1e-6);
      }
    }
  }
  EXPECT_LE(r.lx_low, r.lx);
  EXPECT_GE(r.lx_high, r.lx);
  EXPECT_NEAR(r.la + r.lx, 300000, 300000 * 0.03);
  EXPECT_NEAR(r.lb + r.lx, 100000, 100000 * 0.03);
}

TEST(HllIntersectionTest, ThreeWayEstimatesAndInterval) {
  auto s = sim::MakeScenario({100000, 100000, 100000}, 30000, 5000, 9);
  std::vector<HyperLogLog> hs;
  for (const auto& set : s.sets) hs.push_back(sim::SketchOf(set));
  std::vector<const HyperLogLog*> ptrs = {&hs[0], &hs[1], &hs[2]};
  const IntersectionEstimate k = EstimateIntersectionK(ptrs);
  EXPECT_EQ(k.method, "joint_mle_inclusion_exclusion");
  EXPECT_LE(k.ci95_low, 30000);
  EXPECT_GE(k.ci95_high, 30000);
  EXPECT_NEAR(k.value, 30000, 30000 * 0.15);
  const IntersectionEstimate ie = InclusionExclusion(ptrs);
  EXPECT_EQ(ie.method, "inclusion_exclusion");
  EXPECT_LE(ie.ci95_low, 30000);
  EXPECT_GE(ie.ci95_high, 30000);
  // k = 1 and k = 2 reduce to the size and the pairwise MLE.
  EXPECT_EQ(EstimateIntersectionK(std::span(ptrs).first(1)).value, hs[0].Estimate());
  EXPECT_EQ(EstimateIntersectionK(std::span(ptrs).first(2)).method, "joint_mle");
}

// Accuracy over generated user sets of 1k..1M with known overlaps. Sizes and
// unions must fall inside their 95% intervals in >= 93% of the checks; the
// joint-MLE intersection interval must cover the truth in >= 90% of trials.
TEST(HllAccuracyTest, IntervalsCoverTheTruth) {
  struct Config {
    size_t na, nb;
    double overlap;  // of the smaller set
    int trials;
  };
  std::vector<Config> configs;
  for (size_t n : {1000, 10000, 100000, 1000000}) {
    for (double ov : {0.001, 0.01, 0.1, 0.5}) {
      configs.push_back({n, n, ov, n >= 1000000 ? 6 : n >= 100000 ? 12 : 24});
    }
  }
  for (double ov : {0.01, 0.1, 0.5}) configs.push_back({1000000, 20000, ov, 8});

  int size_checks = 0, size_hits = 0, mle_trials = 0, mle_hits = 0, ie_hits = 0;
  uint64_t seed = 1000;
  std::printf("%-9s %-9s %-7s %-12s %-12s %-8s\n", "|A|", "|B|", "ovl", "mle_mre", "ie_mre",
              "mle_cov");
  for (const Config& c : configs) {
    const size_t common = static_cast<size_t>(std::llround(c.overlap * std::min(c.na, c.nb)));
    double mle_err = 0, ie_err = 0;
    int cov = 0;
    for (int t = 0; t < c.trials; ++t) {
      auto s = sim::MakeScenario({c.na, c.nb}, common, 0, ++seed);
      const HyperLogLog a = sim::SketchOf(s.sets[0]), b = sim::SketchOf(s.sets[1]);
      const HyperLogLog* both[] = {&a, &b};
      auto check = [&](const CardinalityEstimate& e, double truth) {
        ++size_checks;
        size_hits += (e.ci95_low <= truth && truth <= e.ci95_high) ? 1 : 0;
      };
      check(a.EstimateWithError(), static_cast<double>(c.na));
      check(b.EstimateWithError(), static_cast<double>(c.nb));
      check(EstimateUnion(both), s.union_size);
      const IntersectionEstimate m = EstimateIntersection(a, b);
      const IntersectionEstimate ie = InclusionExclusion(both);
      const double truth = s.intersection;
      ++mle_trials;
      const bool hit = m.ci95_low <= truth && truth <= m.ci95_high;
      mle_hits += hit;
      cov += hit;
      ie_hits += ie.ci95_low <= truth && truth <= ie.ci95_high;
      mle_err += std::abs(m.value - truth) / truth;
      ie_err += std::abs(ie.value - truth) / truth;
    }
    std::printf("%-9zu %-9zu %-7g %-12.4f %-12.4f %d/%d\n", c.na, c.nb, c.overlap,
                mle_err / c.trials, ie_err / c.trials, cov, c.trials);
  }
  const double size_cov = static_cast<double>(size_hits) / size_checks;
  const double mle_cov = static_cast<double>(mle_hits) / mle_trials;
  std::printf(
      "size/union coverage %.3f (%d checks); joint-MLE coverage %.3f, IE coverage %.3f "
      "(%d trials)\n",
      size_cov, size_checks, mle_cov, static_cast<double>(ie_hits) / mle_trials, mle_trials);
  EXPECT_GE(size_cov, 0.93);
  EXPECT_GE(mle_cov, 0.90);
}

}  // namespace
}  // namespace seg::stats
