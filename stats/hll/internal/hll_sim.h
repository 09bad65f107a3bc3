// Simulation helpers for HyperLogLog accuracy: synthetic user sets with a
// known overlap, a KMV (k minimum values) sample for comparison, and the
// error/coverage statistics reported by hll_test and `hll_bench --sim`.
// Test and benchmark support only (library seg_hll_sim), not production code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "stats/hll/hll.h"

namespace seg::stats::sim {

// SplitMix64: a deterministic stream of well-mixed 64-bit values. Its
// outputs stand in for MurmurHash64A of distinct user ids (hll_test proves
// the client-side hashing equal to Redis's, so sketches built from hashes
// are the sketches Redis would hold).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// k sets of element hashes: `common` elements in every set, `pairwise`
// elements shared by each pair of sets only, the rest unique to one set.
// Set i has sizes[i] elements (sizes[i] >= common + (k-1) * pairwise).
struct Scenario {
  std::vector<std::vector<uint64_t>> sets;
  double intersection = 0;  // exact size of the intersection of all sets
  double union_size = 0;    // exact size of the union
};
Scenario MakeScenario(const std::vector<size_t>& sizes, size_t common, size_t pairwise,
                      uint64_t seed);

HyperLogLog SketchOf(std::span<const uint64_t> hashes);

// KMV / theta sample: the `capacity` smallest hashes of a set (8 bytes each,
// so 1536 of them cost what a dense Redis HLL costs).
class KmvSketch {
 public:
  KmvSketch(std::span<const uint64_t> hashes, size_t capacity);
  // |intersection of all| estimated as (# hashes below theta present in every
  // sample) / theta, theta = the smallest of the samples' largest kept hash.
  static double EstimateIntersection(std::span<const KmvSketch* const> sketches);

 private:
  std::vector<uint64_t> sorted_;  // ascending
  bool complete_ = false;         // the set had at most `capacity` elements
};

struct EstimatorStats {
  double mean_relative_error = 0;  // mean |estimate - truth| / truth
  double coverage = 0;             // share of trials whose 95% interval holds the truth
  double mean_relative_halfwidth = 0;
};

struct IntersectionSimResult {
  int sets = 0;
  size_t set_size = 0;
  double overlap = 0;  // common / set_size
  int trials = 0;
  EstimatorStats mle;        // EstimateIntersection (k = 2) or EstimateIntersectionK (k >= 3)
  EstimatorStats ie;         // InclusionExclusion
  EstimatorStats kmv;        // KMV with kmv_capacity hashes (coverage not computed); 0 = skipped
  double wald_coverage = 0;  // k = 2: coverage of MLE +/- 1.96 Wald se, for comparison
  double ie_over_mle_error = 0;
};

// `trials` scenarios of `sets` sets of `set_size` users with
// round(overlap * set_size) users in all of them (and `pairwise` in each pair).
IntersectionSimResult SimulateIntersection(int sets, size_t set_size, double overlap,
                                           size_t pairwise, int trials, uint64_t seed,
                                           size_t kmv_capacity = 0);

std::string ToJson(const IntersectionSimResult& r);

}  // namespace seg::stats::sim
